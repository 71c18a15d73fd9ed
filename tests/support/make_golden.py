"""Write the golden vectors under tests/data/golden/: `python tests/support/make_golden.py`.

Each case is a folder with

    weights.safetensors        the classifier's weights (layout: docs/equivalence.md)
    tensors/<case>_<i>.npy     float32 (C, S, S) inputs in [0, 1]
    expected.json              labels, image ids, and the float64 logits and probabilities
                               of the direct-loop reference (tests/support/flux_reference.py)
    prediction.json            the prediction document a backend must write for this batch
                               (backend "flux", device "cpu"; the torch test ignores those two)

Both backends are checked against these files: pytest for torch (tests/contract/test_golden.py),
julia/test/runtests.jl for Flux.  The files are pickle-free and byte-reproducible; a test
regenerates them and compares bytes.  A trained case's weights are read from the committed
file, not trained again (`--retrain` trains them anew: sdcnn.classify.training trains in float64,
so that gives the same weights on any CPU measured; tests/contract/test_golden.py checks it within
a stated tolerance).  Paths inside the JSON files are relative to the
repository root, as the workflow's own paths are relative to its working directory.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script: `sdcnn` and `tests` from this checkout

from sdcnn.classify.prediction import prediction_document  # noqa: E402
from sdcnn.classify.weights import CNNWeights, check_weights, expected_shapes, save_weights  # noqa: E402
from sdcnn.core.fileio import dumps_json, write_bytes_atomic  # noqa: E402
from sdcnn.core.naming import image_ids  # noqa: E402
from tests.support import flux_reference  # noqa: E402

GOLDEN_DIR = "tests/data/golden"  # as recorded in the JSON files, relative to the repository
FORMAT = "sdcnn-golden/1"
TOLERANCE = 1e-5  # what a float32 backend must match the float64 reference to


@dataclass(frozen=True)
class Case:
    name: str
    in_channels: int
    image_size: int
    labels: tuple[str, ...]
    n_images: int
    seed: int
    labels_in_metadata: bool
    trained: bool = False  # weights trained on drawn shapes, not random


CASES = (
    # Grayscale, as the workflow's default; the labels recorded in the file's metadata.
    Case("gray8", 1, 8, ("cat", "dog", "ship"), 2, 11, True),
    # RGB and an image side whose pooled side is odd (10 -> 5 -> 2): floor pooling matters.
    Case("rgb10", 3, 10, ("airplane", "bird", "frog", "truck"), 3, 12, False),
    # A realistic network: the seed's CNN trained (sdcnn.classify.training) on drawn shape pictures
    # at the demo's 32x32, and shown drawn pictures it did not train on.
    Case("shapes32", 1, 32, ("circle", "square", "triangle"), 3, 13, True, trained=True),
)
TRAINING_PICTURES = 72  # drawn pictures (seeds 1000...) the trained case learns from


def shape_tensor(seed: int, size: int) -> tuple[np.ndarray, str]:
    """A drawn shape picture (sdcnn.demo.pictures) as the workflow's tensor, and its shape."""
    from sdcnn.demo.pictures import draw_picture
    from sdcnn.preprocess.image_to_tensor import to_tensor

    rgb, prompt = draw_picture(seed)
    tensor = to_tensor(np.ascontiguousarray(rgb[..., ::-1]), size, True, "auto")  # BGR in
    return tensor, prompt.split()[-1]


def trained_weights(case: Case) -> CNNWeights:
    """The case's CNN trained a few epochs on drawn shapes: seeded, one thread."""
    from sdcnn.classify.training import LabelledImages, TrainingSettings, train

    pairs = [shape_tensor(1000 + index, case.image_size) for index in range(TRAINING_PICTURES)]
    data = {
        "train": LabelledImages(
            np.stack([tensor for tensor, _ in pairs]),
            np.array([case.labels.index(shape) for _, shape in pairs]),
            [f"train_{index}" for index in range(len(pairs))],
        ),
        "holdout": LabelledImages(np.zeros((0, 1, 1, 1), np.float32), np.array([]), []),
    }
    settings = TrainingSettings(
        epochs=100,
        batch_size=16,
        learning_rate=0.002,
        seed=case.seed,
        holdout_every=4,
        threads=1,
    )
    weights, _ = train(data, list(case.labels), settings)
    return weights


def case_images(rng: np.random.Generator, case: Case) -> list[np.ndarray]:
    """Images that differ along H and W: a ramp along W, a ramp along H, then noise."""
    size, channels = case.image_size, case.in_channels
    ramp = np.linspace(0.0, 1.0, size)
    along_w = np.broadcast_to(ramp[None, None, :] ** 2, (channels, size, size))
    along_h = np.broadcast_to(ramp[None, :, None], (channels, size, size)) * 0.8
    patterns = [along_w, along_h]
    images = []
    for index in range(case.n_images):
        noise = rng.uniform(0.0, 1.0, size=(channels, size, size))
        base = patterns[index] if index < len(patterns) else noise
        image = 0.7 * base + 0.3 * noise if index < len(patterns) else noise
        images.append(np.clip(image, 0.0, 1.0).astype(np.float32))
    return images


def case_weights(rng: np.random.Generator, case: Case) -> CNNWeights:
    """Random weights scaled so that the probabilities are far from uniform."""
    scales = {
        "conv1.weight": 0.8 / np.sqrt(case.in_channels),
        "conv1.bias": 0.1,
        "conv2.weight": 0.4,
        "conv2.bias": 0.1,
        "dense.weight": 0.3,
        "dense.bias": 0.3,
    }
    shapes = expected_shapes(case.in_channels, case.image_size, len(case.labels))
    tensors = {
        name: (rng.uniform(-1.0, 1.0, size=shape) * scales[name]).astype(np.float32)
        for name, shape in shapes.items()
    }
    for name in ("conv1.weight", "conv2.weight"):  # no kernel may hide a flip or a transpose
        kernel = tensors[name]
        for mirrored in (kernel[..., ::-1, ::-1], kernel.swapaxes(-1, -2)):
            assert np.abs(kernel - mirrored).reshape(len(kernel), -1).max(axis=1).min() > 0.05
    labels = list(case.labels) if case.labels_in_metadata else None
    weights = CNNWeights(tensors, labels)
    check_weights(weights, case.name)
    return weights


def committed_weights(case: Case) -> CNNWeights:
    """The weights of ``case`` as committed under tests/data/golden/."""
    from sdcnn.classify.weights import load_weights

    return load_weights(REPO / GOLDEN_DIR / case.name / "weights.safetensors")


def write_case(case: Case, root: Path, retrain: bool = False) -> None:
    """Write ``case`` under ``root``; a trained case's weights are the committed ones
    unless ``retrain``."""
    rng = np.random.default_rng(case.seed)
    if case.trained:
        weights = trained_weights(case) if retrain else committed_weights(case)
        images = [shape_tensor(2000 + index, case.image_size)[0] for index in range(case.n_images)]
    else:
        weights = case_weights(rng, case)
        images = case_images(rng, case)
    ids = image_ids(case.name, case.n_images)
    folder = root / case.name
    (folder / "tensors").mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.safetensors", weights)
    for stem, image in zip(ids, images, strict=True):
        np.save(folder / "tensors" / f"{stem}.npy", image, allow_pickle=False)

    logits = [flux_reference.logits(weights.tensors, image) for image in images]
    probabilities = np.array([flux_reference.softmax(row) for row in logits])
    spread = probabilities.max(axis=1) - probabilities.min(axis=1)
    assert spread.min() > 0.1, f"{case.name}: probabilities too close to uniform: {spread}"
    if not case.trained:  # a trained network may be sure of itself
        assert probabilities.min() > 1e-4, f"{case.name}: saturated: {probabilities}"
    expected = {
        "format": FORMAT,
        "case": case.name,
        "generator": "tests/support/make_golden.py",
        "reference": "tests/support/flux_reference.py (direct loops, float64, Flux.jl semantics)",
        "tolerance": TOLERANCE,
        "in_channels": case.in_channels,
        "image_size": case.image_size,
        "labels": list(case.labels),
        "image_ids": ids,
        "logits": logits,
        "probabilities": probabilities.tolist(),
    }
    write_bytes_atomic(folder / "expected.json", dumps_json(expected).encode("utf-8"))

    recorded = f"{GOLDEN_DIR}/{case.name}"
    document = prediction_document(
        prompt_id=case.name,
        labels=list(case.labels),
        image_ids=ids,
        tensor_paths=[str(folder / "tensors" / f"{stem}.npy") for stem in ids],
        weights_path=str(folder / "weights.safetensors"),
        probabilities=probabilities,
        backend="flux",
        device="cpu",
    )
    document["weights"]["path"] = f"{recorded}/weights.safetensors"
    for image in document["images"]:
        image["tensor"] = f"{recorded}/tensors/{image['image_id']}.npy"
    write_bytes_atomic(folder / "prediction.json", dumps_json(document).encode("utf-8"))


def write_golden(root: Path, retrain: bool = False) -> list[Path]:
    """Write every case under ``root``; return the files written."""
    for case in CASES:
        write_case(case, root, retrain)
    return sorted(path for path in root.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / GOLDEN_DIR, help="output folder")
    parser.add_argument(
        "--retrain", action="store_true", help="train the trained cases' weights anew"
    )
    args = parser.parse_args(argv)
    for path in write_golden(args.out, args.retrain):
        print(path)


if __name__ == "__main__":
    main()
