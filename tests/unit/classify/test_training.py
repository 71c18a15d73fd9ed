"""Training the classifier (sdcnn/classify/training.py): splits, determinism, and weights both
backends read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdcnn.classify.training import (
    LabelledPrompts,
    TrainingOutputs,
    TrainingSettings,
    train_classifier,
)
from sdcnn.core.shards import ShardLayout
from sdcnn.reporting.figures import write_training_figures


def write_shapes(folder: Path, prompt_id: str, n: int, bright: bool, seed: int) -> None:
    """Images the CNN can tell apart: a bright or a dark square on noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        tensor = rng.random((1, 16, 16), dtype=np.float32) * 0.2
        tensor[0, 4:12, 4:12] += 0.75 if bright else 0.05
        np.save(folder / f"{prompt_id}_{index:03d}.npy", tensor, allow_pickle=False)


SETTINGS = TrainingSettings(
    epochs=8, batch_size=4, learning_rate=0.01, seed=1, holdout_every=4, threads=1
)


def trained(tmp_path: Path, name: str) -> dict:
    tensors = tmp_path / "tensors" / "s"
    write_shapes(tensors / "up", "up", 12, bright=True, seed=1)
    write_shapes(tensors / "down", "down", 12, bright=False, seed=2)
    out = tmp_path / name
    prompts = [
        {"prompt_id": "up", "label": "bright", "n_images": 12, "shard": "s"},
        {"prompt_id": "down", "label": "dark", "n_images": 12, "shard": "s"},
    ]
    metrics = train_classifier(
        LabelledPrompts({"s": tensors}, prompts, ["bright", "dark"], ShardLayout(True)),
        SETTINGS,
        TrainingOutputs(out / "w.safetensors", out / "metrics.json"),
    )
    write_training_figures(metrics, out / "curve.png", out / "confusion.png")
    return metrics


def test_training_learns_splits_and_is_deterministic(tmp_path: Path) -> None:
    metrics = trained(tmp_path, "first")
    assert metrics["n_train"] == 18 and metrics["holdout"]["n_images"] == 6
    assert metrics["holdout"]["accuracy"] == 1.0, metrics["holdout"]
    assert len(metrics["curve"]) == SETTINGS.epochs
    assert metrics["curve"][-1]["loss"] < metrics["curve"][0]["loss"]
    trained(tmp_path, "second")
    for name in ("w.safetensors", "metrics.json", "curve.png", "confusion.png"):
        first, second = (tmp_path / run / name for run in ("first", "second"))
        assert first.read_bytes() == second.read_bytes(), f"{name} differs between two runs"


def test_trained_weights_are_the_contracts_and_predict_alike(tmp_path: Path) -> None:
    """The file loads as any weights file does, and the predict step's network gives the
    held-out images the labels the training measured."""
    import torch

    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.weights import load_weights

    metrics = trained(tmp_path, "run")
    weights = load_weights(tmp_path / "run" / "w.safetensors")
    assert weights.labels == ["bright", "dark"]
    holdout = [f"up_{i:03d}" for i in (3, 7, 11)] + [f"down_{i:03d}" for i in (3, 7, 11)]
    batch = np.stack(
        [
            np.load(tmp_path / "tensors" / "s" / stem.split("_")[0] / f"{stem}.npy")
            for stem in holdout
        ]
    )
    with torch.inference_mode():
        given = FluxCNN(weights)(torch.from_numpy(batch)).argmax(dim=1).tolist()
    assert given == [0, 0, 0, 1, 1, 1]
    assert metrics["holdout"]["confusion_matrix"]["counts"] == [[3, 0], [0, 3]]


def test_augmentation_moves_a_shape_but_keeps_it() -> None:
    """Mirrored and shifted by at most an eighth of the side, on the background's value:
    the shape is all still there, seeded, and the batch changes between epochs."""
    from sdcnn.classify.training import augmented

    image = np.full((1, 1, 32, 32), 0.9, np.float32)
    image[0, 0, 12:20, 10:16] = 0.1  # a dark block away from the border
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    first, again = augmented(image, rng_a), augmented(image, rng_b)
    np.testing.assert_array_equal(first, again)  # the same seed, the same augmentation
    moves = [augmented(image, rng_a) for _ in range(20)]
    for moved in (first, *moves):
        assert (moved < 0.5).sum() == (image < 0.5).sum(), "the shape lost or gained pixels"
        rows, cols = np.nonzero(moved[0, 0] < 0.5)
        # rows 12..19 shifted by up to 4; columns 10..15, or mirrored 16..21, shifted by up to 4
        assert 8 <= rows.min() <= 16 and 6 <= cols.min() <= 20, (rows.min(), cols.min())
        assert set(np.unique(moved[moved >= 0.5])) == {np.float32(0.9)}  # background filled
    assert len({moved.tobytes() for moved in moves}) > 5, "the augmentation barely varies"
