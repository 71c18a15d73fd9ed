"""Probabilities survive the JSON: each written value, read back as float32, is the model's.

The prediction JSON holds probabilities with 9 significant digits, enough for any float32
to come back exactly.  Golden files compare bytes of one case; these tests compare values:
the network (sdcnn.classify.cnn.FluxCNN) run here on the tensors, against what the predict step
(sdcnn.classify.prediction) wrote for them, bit for bit, over many magnitudes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sdcnn.classify.cnn import FluxCNN
from sdcnn.classify.prediction import predict_prompt, round_probability
from sdcnn.classify.weights import CNNWeights, init_weights, save_weights

LABELS = [f"label{index}" for index in range(10)]
SIZE = 16
N_IMAGES = 6


def spread_weights(seed: int) -> CNNWeights:
    """Random weights with a dense layer scaled up, so the softmax spans many orders of
    magnitude (from ~1e-30 to ~1) instead of hovering near 1 / n_labels."""
    tensors = init_weights(seed, 1, SIZE, len(LABELS)).tensors
    tensors["dense.weight"] = tensors["dense.weight"] * np.float32(400)
    tensors["dense.bias"] = np.linspace(-8, 8, len(LABELS), dtype=np.float32)
    return CNNWeights(tensors)


def float32_bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def written_and_computed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, np.ndarray]:
    folder = tmp_path_factory.mktemp("precision")
    weights = spread_weights(seed=11)
    save_weights(folder / "w.safetensors", weights)
    (folder / "tensors").mkdir()
    rng = np.random.default_rng(12)
    image_ids = [f"p_{index:03d}" for index in range(N_IMAGES)]
    batch = rng.random((N_IMAGES, 1, SIZE, SIZE), dtype=np.float32)
    for stem, tensor in zip(image_ids, batch, strict=True):
        np.save(folder / "tensors" / f"{stem}.npy", tensor)
    predict_prompt(
        backend="torch",
        julia_project="julia",
        prompt_id="p",
        tensor_dir=str(folder / "tensors"),
        image_ids=image_ids,
        weights_path=str(folder / "w.safetensors"),
        labels=LABELS,
        output_path=str(folder / "p.json"),
        gpus=0,
        threads=1,
    )
    document = json.loads((folder / "p.json").read_text(encoding="utf-8"))
    torch.set_num_threads(1)
    model = FluxCNN(weights)
    with torch.inference_mode():  # one image per forward, each image on its own
        computed = np.concatenate(
            [model(torch.from_numpy(batch[i : i + 1])).numpy() for i in range(N_IMAGES)]
        )
    assert computed.dtype == np.float32
    return document, computed


def test_the_case_spans_many_magnitudes(written_and_computed: tuple[dict, np.ndarray]) -> None:
    _, computed = written_and_computed
    exponents = np.frexp(computed[computed > 0])[1]
    assert exponents.max() - exponents.min() >= 40, (
        f"the probabilities span only 2^{exponents.min()}..2^{exponents.max()}: "
        "too narrow a test of the 9-digit rounding"
    )


def test_written_probabilities_read_back_as_the_models_float32(
    written_and_computed: tuple[dict, np.ndarray],
) -> None:
    document, computed = written_and_computed
    assert document["labels"] == LABELS
    wrong = []
    for row, image in zip(computed, document["images"], strict=True):
        read_back = np.array([image["probabilities"][label] for label in LABELS], np.float32)
        for label, got, want in zip(LABELS, read_back, row, strict=True):
            if float32_bits(got) != float32_bits(want):
                written = image["probabilities"][label]
                wrong.append(
                    f"{image['image_id']} {label}: JSON {written!r} -> float32 "
                    f"{got:.9g}, the model's float32 {want:.9g}"
                )
        top = int(np.argmax(row))
        assert image["top_label"] == LABELS[top], f"{image['image_id']}: top {image['top_label']}"
        assert float32_bits(np.float32(image["top_probability"])) == float32_bits(row[top]), (
            f"{image['image_id']}: top_probability {image['top_probability']!r} is not the "
            f"model's {row[top]:.9g} as float32"
        )
    assert wrong == [], (
        f"{len(wrong)} of {computed.size} probabilities do not round-trip:\n"
        + "\n".join(wrong[:10])
    )


def test_nine_significant_digits_round_trip_every_float32_in_the_unit_range() -> None:
    """The rounding itself, on 200,000 random float32 bit patterns in (0, 1]: subnormals,
    tiny, and near-one values alike."""
    rng = np.random.default_rng(13)
    bits = rng.integers(1, np.float32(1).view(np.uint32) + 1, 200_000, dtype=np.uint32)
    values = bits.view(np.float32)
    back = np.array([round_probability(float(value)) for value in values], np.float32)
    lost = np.flatnonzero(back.view(np.uint32) != bits)
    assert lost.size == 0, (
        f"{lost.size} float32 values change through round_probability, e.g. "
        f"{values[lost[0]]:.12g} -> {back[lost[0]]:.12g}"
    )
