"""Predicting (sdcnn/classify/prediction.py): every ``classifier`` setting changes the
predictions or is listed with the reason it does not; the torch path asks for exact fp32.

A new key in config/schema.yaml fails these tests until it is placed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.settings import DEFAULTS, unplaced_keys
from tests.support.workspace import REPO


@pytest.fixture(autouse=True)
def torch_threads_restored() -> Any:
    """generate_shard pins torch's threads for the process: put them back after each test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- classification: the predictions

NOT_IN_THE_PREDICTIONS = {
    "classifier.gpu": "a resource (device in the JSON); numerics held by docs/equivalence.md",
    "classifier.backend": (
        "the same numbers by contract (tests/contract/test_golden.py); the JSON names it"
    ),
    "classifier.threads": "pinned (a param) so that no thread count can change the last bits",
}
CLASSIFIER_CHANGES = ("labels", "weights_seed", "weights")


def test_every_classifier_setting_is_placed() -> None:
    unplaced = unplaced_keys("classifier", CLASSIFIER_CHANGES, NOT_IN_THE_PREDICTIONS)
    assert unplaced == [], f"{unplaced}: say how they change the predictions, or why not"


def predictions(tmp_path: Path, name: str, classifier: dict[str, Any]) -> dict[str, Any]:
    """The prediction document of two noise tensors, made as the workflow makes it."""
    from sdcnn.classify.prediction import predict_prompt
    from sdcnn.classify.weights import init_weights, save_weights

    tensors = tmp_path / "tensors"
    if not tensors.exists():
        tensors.mkdir()
        rng = np.random.default_rng(0)
        for index in range(2):
            tensor = rng.random((1, 16, 16), dtype=np.float32)
            np.save(tensors / f"p_{index:03d}.npy", tensor, allow_pickle=False)
    weights = classifier["weights"]
    if weights in (None, "glorot"):
        weights = str(tmp_path / f"{name}.safetensors")
        seed, n_labels = classifier["weights_seed"], len(classifier["labels"])
        save_weights(weights, init_weights(seed, 1, 16, n_labels))
    document = predict_prompt(
        backend="torch",
        prompt_id="p",
        tensor_dir=str(tensors),
        image_ids=["p_000", "p_001"],
        weights_path=weights,
        labels=classifier["labels"],
        output_path=str(tmp_path / f"{name}.json"),
        gpus=0,
        threads=1,
        julia_project=REPO / "julia",
    )
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("name", CLASSIFIER_CHANGES)
def test_every_classifier_setting_changes_the_predictions(name: str, tmp_path: Path) -> None:
    from sdcnn.classify.weights import init_weights, save_weights

    base = copy.deepcopy(DEFAULTS["classifier"])
    base["labels"] = ["cat", "dog", "ship"]
    new = copy.deepcopy(base)
    if name == "labels":
        new["labels"] = ["cat", "ship", "dog"]
    elif name == "weights_seed":
        new["weights_seed"] = base["weights_seed"] + 1
    else:
        own = tmp_path / "own.safetensors"
        save_weights(own, init_weights(1234, 1, 16, 3))
        new["weights"] = str(own)
    before = predictions(tmp_path, "before", base)
    after = predictions(tmp_path, "after", new)
    before_images = [image["probabilities"] for image in before["images"]]
    after_images = [image["probabilities"] for image in after["images"]]
    assert before_images != after_images, f"classifier.{name} changed nothing in the JSON"


def test_the_torch_predict_path_asks_for_exact_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from sdcnn.classify import prediction
    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.weights import init_weights

    devices: list[str] = []
    monkeypatch.setattr(prediction, "exact_fp32_on_cuda", devices.append)
    model = FluxCNN(init_weights(in_channels=1, image_size=8, n_labels=2, seed=0))
    prediction.predict_torch(model, np.zeros((1, 1, 8, 8), dtype=np.float32), "cpu")
    assert devices == ["cpu"]
