"""A real shard through preprocess and predict: the synthetic path's tensors, one model load,
and a prediction file that says source real, image by image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcnn.classify.weights import init_weights, save_weights
from sdcnn.core.errors import StepError
from sdcnn.core.naming import tensor_path
from sdcnn.evaluate.real_images import RealImageError, preprocess_real_image
from sdcnn.evaluate.real_prediction import (
    SOURCE,
    predict_real_shard,
    real_prediction_document,
)
from sdcnn.evaluate.real_shard import preprocess_real_shard

LABELS = ["cat", "dog"]
SETTINGS = {"size": 8, "grayscale": True, "interpolation": "area"}


def picture(path: Path, seed: int, size: tuple[int, int] = (20, 12)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Three real pictures, by image id."""
    return {f"img{i}": picture(tmp_path / "set" / f"{i}.png", i) for i in range(3)}


@pytest.mark.parametrize("threads", [1, 3])
def test_each_image_gets_the_preprocess_steps_tensor(
    tmp_path: Path, files: dict[str, Path], threads: int
) -> None:
    folder = tmp_path / "tensors"
    assert preprocess_real_shard(files, folder, **SETTINGS, threads=threads) == 3
    assert sorted(path.name for path in folder.iterdir()) == ["img0.npy", "img1.npy", "img2.npy"]
    for image_id, path in files.items():
        expected = preprocess_real_image(path, **SETTINGS)
        tensor = np.load(tensor_path(folder, image_id))
        assert tensor.dtype == np.float32 and tensor.shape == (1, 8, 8)
        assert np.array_equal(tensor, expected)


def test_a_refused_file_names_itself_and_leaves_no_folder(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    files["empty"] = tmp_path / "set" / "empty.png"
    files["empty"].write_bytes(b"")
    folder = tmp_path / "tensors"
    with pytest.raises(RealImageError, match="empty.png"):
        preprocess_real_shard(files, folder, **SETTINGS)
    assert not folder.exists() and not list(tmp_path.glob(".tensors*"))


def backend_document(ids: list[str], top: list[int]) -> dict:
    """What a backend writes for one batch without a label (as sdcnn.classify.prediction)."""
    images = []
    for image_id, index in zip(ids, top, strict=True):
        probabilities = {label: 0.9 if i == index else 0.1 for i, label in enumerate(LABELS)}
        images.append(
            {
                "image_id": image_id,
                "tensor": f"t/{image_id}.npy",
                "tensor_sha256": "0" * 64,
                "safety_flagged": None,
                "label": None,
                "split": None,
                "probabilities": probabilities,
                "top_label": LABELS[index],
                "top_probability": 0.9,
                "correct": None,
            }
        )
    return {
        "schema": "sdcnn-predictions/1",
        "prompt_id": "01-of-02",
        "backend": "flux",
        "device": "cpu",
        "labels": LABELS,
        "weights": {},
        "images": images,
    }


def test_the_document_gives_each_image_its_label_path_and_verdict() -> None:
    images = {
        "a": {"path": "cat/a.png", "label": "cat"},
        "b": {"path": "cat/b.png", "label": "cat"},
        "c": {"path": "c.png", "label": None},
    }
    document = real_prediction_document(
        backend_document(["a", "b", "c"], [0, 1, 1]), "01-of-02", images
    )
    assert document["source"] == SOURCE == "real"
    assert document["shard"] == "01-of-02" and document["prompt_id"] is None
    assert document["backend"] == "flux" and document["labels"] == LABELS
    got = [
        (i["path"], i["label"], i["top_label"], i["correct"], i["split"])
        for i in document["images"]
    ]
    assert got == [
        ("cat/a.png", "cat", "cat", True, None),
        ("cat/b.png", "cat", "dog", False, None),
        ("c.png", None, "dog", None, None),
    ]


def test_a_real_image_is_never_in_a_split() -> None:
    predicted = backend_document(["a"], [0])
    predicted["images"][0]["split"] = "train"  # whatever a backend says
    images = {"a": {"path": "a.png", "label": "cat"}}
    assert real_prediction_document(predicted, "s", images)["images"][0]["split"] is None


def test_a_backend_that_reorders_the_images_is_an_error() -> None:
    images = {"a": {"path": "a.png", "label": None}, "b": {"path": "b.png", "label": None}}
    with pytest.raises(StepError, match="in order"):
        real_prediction_document(backend_document(["b", "a"], [0, 0]), "s", images)


def predicted(tmp_path: Path, files: dict[str, Path], label: str | None, weights_size: int) -> dict:
    """The files' shard preprocessed (8 x 8) and predicted with torch through Glorot weights
    for ``weights_size`` images, every image given ``label``; ``tmp_path/out/1-of-1.json``."""
    tensors = tmp_path / "tensors"
    preprocess_real_shard(files, tensors, **SETTINGS)
    weights = tmp_path / "w.safetensors"
    save_weights(weights, init_weights(7, 1, weights_size, len(LABELS)))
    return predict_real_shard(
        {image_id: {"path": f"{image_id}.png", "label": label} for image_id in files},
        tensors,
        tmp_path / "out" / "deeper" / "1-of-1.json",
        shard="1-of-1",
        backend="torch",
        weights_path=str(weights),
        labels=LABELS,
        gpus=0,
        threads=1,
        julia_project=tmp_path / "no-julia",
    )


def test_a_shard_is_predicted_with_torch_in_one_file(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    document = predicted(tmp_path, files, "dog", weights_size=8)
    output = tmp_path / "out" / "deeper" / "1-of-1.json"  # its folders made
    assert json.loads(output.read_text(encoding="utf-8")) == document
    assert document["shard"] == "1-of-1" and document["prompt_id"] is None
    assert [image["image_id"] for image in document["images"]] == list(files)
    assert document["backend"] == "torch" and document["source"] == "real"
    for image in document["images"]:
        assert sum(image["probabilities"].values()) == pytest.approx(1, abs=1e-6)
        assert image["correct"] == (image["top_label"] == "dog")
    assert list(output.parent.iterdir()) == [output], "the backend's own file is left behind"


def test_a_failed_prediction_writes_no_file(tmp_path: Path, files: dict[str, Path]) -> None:
    (tmp_path / "out" / "deeper").mkdir(parents=True)  # from an earlier run
    with pytest.raises(StepError):
        predicted(tmp_path, files, None, weights_size=16)  # weights for 16 x 16: refused
    assert list((tmp_path / "out" / "deeper").iterdir()) == []
