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
