"""Training the classifier: splits, metrics, determinism, and weights both backends read."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from sdcnn.classify.metrics import classification_metrics
from sdcnn.classify.training import (
    LabelledPrompts,
    TrainingOutputs,
    TrainingSettings,
    train_classifier,
)
from sdcnn.config.check import ConfigError, check_config, load_schema
from sdcnn.config.prompts import checked_prompts
from sdcnn.core.naming import split_of
from sdcnn.core.shards import ShardLayout
from sdcnn.reporting.figures import write_training_figures
from tests.support.configs import SMALL_CONFIG
from tests.support.workspace import REPO

SCHEMA_PATH = REPO / "config" / "schema.yaml"


def test_every_kth_image_is_held_out_and_stays_so() -> None:
    assert [split_of(i, 4) for i in range(8)] == ["train"] * 3 + ["holdout"] + ["train"] * 3 + [
        "holdout"
    ]
    assert [split_of(i, 2) for i in range(4)] == ["train", "holdout", "train", "holdout"]


def test_metrics_against_a_hand_count() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    given = ["a", "a", "b", "b", "a", "a"]
    metrics = classification_metrics(truth, given, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["confusion_matrix"]["counts"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert metrics["per_label"]["a"] == {"precision": 2 / 4, "recall": 2 / 3, "support": 3}
    assert metrics["per_label"]["b"] == {"precision": 1 / 2, "recall": 1 / 2, "support": 2}
    # c was never predicted: its precision is undefined, not 0
    assert metrics["per_label"]["c"] == {"precision": None, "recall": 0.0, "support": 1}
    assert classification_metrics([], [], ["a"])["accuracy"] is None


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


def labelled_config(**changes: object) -> dict:
    config = copy.deepcopy(SMALL_CONFIG)
    config.update(changes)
    return check_config(config, SCHEMA_PATH)


def test_a_label_not_in_the_labels_is_refused_naming_the_key() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"]["city"]["label"] = "shipp"
    with pytest.raises(ConfigError, match=r"^config key prompts\.city\.label: 'shipp' is not one "
                       r"of classifier\.labels \(cat, dog, ship\) \(did you mean 'ship'\?\)$"):
        checked_prompts(check_config(config, SCHEMA_PATH), load_schema(SCHEMA_PATH))


def test_a_sheet_label_not_in_the_labels_names_row_and_column(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.tsv").write_text("prompt_id\ttext\tlabel\na\tone\tship\nb\ttwo\tcow\nc\tthree\t\n")
    config = labelled_config(prompts="p.tsv")
    with pytest.raises(ConfigError, match=r"^prompt sheet p\.tsv, row 3, column label: 'cow' is "
                       r"not one of classifier\.labels"):
        checked_prompts(config, load_schema(SCHEMA_PATH))


def test_trained_weights_need_labelled_prompts() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    for prompt in config["prompts"].values():
        del prompt["label"]
    with pytest.raises(ConfigError, match=r"^config key classifier\.weights: trained needs "
                       r"labelled prompts"):
        checked_prompts(check_config(config, SCHEMA_PATH), load_schema(SCHEMA_PATH))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", 0, r"training\.epochs: 0 is less than the minimum 1"),
        ("learning_rate", 0, r"training\.learning_rate: 0 is not above 0"),
        ("holdout_every", 1, r"training\.holdout_every: 1 is less than the minimum 2"),
        ("batch_size", "8", r"training\.batch_size: '8' is a string, expected an integer"),
        ("epoch", 3, r"training\.epoch: unknown key \(did you mean training\.epochs\?\)"),
    ],
)
def test_bad_training_settings_are_refused_naming_the_key(
    key: str, value: object, message: str
) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["training"] = {**config["training"], key: value}
    with pytest.raises(ConfigError, match=rf"^config key {message}"):
        check_config(config, SCHEMA_PATH)


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
