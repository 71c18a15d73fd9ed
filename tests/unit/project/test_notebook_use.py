"""The stages from Python, without Snakemake: the README's few lines, run as written."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from sdcnn.classify.weights import CNNWeights, init_weights, save_weights
from sdcnn.config.check import load_schema
from sdcnn.generate.pipeline import GenerationSettings
from tests.support.workspace import REPO


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A weights file as a run leaves one (results/weights/): gray 32 x 32, two labels."""
    path = tmp_path / "weights.safetensors"
    tensors = init_weights(seed=3, in_channels=1, image_size=32, n_labels=2).tensors
    save_weights(path, CNNWeights(tensors, ["day", "night"]))
    return path


def test_a_prompts_images_and_their_labels_from_python(
    tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # the README's lines
    from sdcnn.classify.folder import classify_folder
    from sdcnn.generate.shard_generator import generate_prompt

    paths = generate_prompt("A lighthouse at dusk", "images", steps=2, height=64, width=64)
    scores = classify_folder("images", "weights.safetensors", size=32)
    # what they give
    assert paths == [Path("images/prompt_000.png")]
    with Image.open(paths[0]) as image:
        assert image.size == (64, 64) and image.text["prompt"] == "A lighthouse at dusk"
    assert list(scores) == ["prompt_000.png"]
    assert set(scores["prompt_000.png"]) == {"day", "night"}
    assert sum(scores["prompt_000.png"].values()) == pytest.approx(1.0, abs=1e-6)


def test_generation_settings_default_to_the_configs_defaults() -> None:
    schema = load_schema(REPO / "config" / "schema.yaml")
    keys = schema["properties"]["generation"]["properties"]
    for field in dataclasses.fields(GenerationSettings):
        assert field.default == keys[field.name]["default"], field.name


def test_a_real_set_scored_from_python(tmp_path: Path) -> None:
    """The README's lines for a real set: the demo's real-like pictures (one circle moved
    to square/) through a weights file that records its labels, scored as the workflow
    scores them."""
    import shutil

    from sdcnn.demo.real_set import demo_real_folder
    from sdcnn.evaluate.real_set import evaluate_real_set
    from sdcnn.evaluate.scores import evaluation_line

    folder = tmp_path / "real"
    shutil.copytree(demo_real_folder(), folder)
    moved = sorted((folder / "circle").iterdir())[0]
    moved.rename(folder / "square" / moved.name)  # a circle labelled square
    path = tmp_path / "weights.safetensors"
    tensors = init_weights(seed=3, in_channels=1, image_size=32, n_labels=3).tensors
    save_weights(path, CNNWeights(tensors, ["circle", "square", "triangle"]))
    metrics = evaluate_real_set(folder, path, size=32)
    assert (metrics["n_images"], metrics["n_labelled"]) == (36, 36)
    assert metrics["real"]["per_label"]["square"]["support"] == 13
    assert metrics["gap"] is None and metrics["holdout"] is None
    right = metrics["counts"]["right"]
    assert metrics["real_accuracy"] == right / 36
    assert evaluation_line(metrics).endswith(f"({right} of 36), gap n/a")
