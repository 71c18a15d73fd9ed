"""Training the shapes pipeline (sdcnn/demo/training.py): the committed folder, reproducible
training.

The tests that train a pipeline are marked ``pipeline`` (diffusers, a few seconds each)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcnn.core.fileio import sha256_file
from sdcnn.demo import pictures
from sdcnn.demo import training as demo_training
from sdcnn.demo.check import draw_and_check, load_shapes_pipeline
from tests.support.demo import COMMITTED, kept_torch_threads

COMPONENTS = ["scheduler", "text_encoder", "tokenizer", "unet", "vae"]


@pytest.fixture
def torch_threads() -> Iterator[None]:
    with kept_torch_threads():
        yield


def test_committed_folder_is_a_complete_safetensors_pipeline() -> None:
    index = json.loads((COMMITTED / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == "StableDiffusionPipeline"
    present = [name for name, entry in index.items() if isinstance(entry, list) and entry[0]]
    assert sorted(present) == COMPONENTS  # no safety checker, no feature extractor
    files = [path for path in COMMITTED.rglob("*") if path.is_file()]
    weights = [path for path in files if path.suffix == ".safetensors"]
    assert sorted(path.parent.name for path in weights) == ["text_encoder", "unet", "vae"]
    assert not [path for path in files if path.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
    assert sum(path.stat().st_size for path in files) < 8_000_000  # a few MB


@pytest.mark.pipeline
def test_training_is_reproducible_and_saves_a_loadable_pipeline(
    tmp_path: Path, torch_threads: None
) -> None:
    # the command line as it is typed, an option and its value together
    tiny = [
        "--pictures", "48", "--vae-steps", "2", "--unet-steps", "2", "--vae-batch", "4",
        "--unet-batch", "4", "--warmup-steps", "1", "--log-every", "1", "--seed", "3",
    ]  # fmt: skip
    first, second = tmp_path / "first", tmp_path / "second"
    assert demo_training.main([*tiny, "--output", str(first)]) == 0
    assert demo_training.main([*tiny, "--output", str(second)]) == 0
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    for name in files:
        assert sha256_file(first / name) == sha256_file(second / name), name
    record = json.loads((first / demo_training.TRAINING_RECORD).read_text(encoding="utf-8"))
    assert record["settings"]["seed"] == 3 and record["settings"]["unet_steps"] == 2
    assert record["command"].startswith("python -m sdcnn.demo.training --seed 3 --pictures 48")
    pipeline = load_shapes_pipeline(first, threads=2)
    assert pipeline.vae.config.scaling_factor != 0.18215  # measured on this VAE's latents
    assert type(pipeline.scheduler).__name__ == "DDIMScheduler"
    samples = draw_and_check(pipeline, ["a red circle"], [0], steps=2, guidance=4.0)
    assert samples[0].pixels.shape == (pictures.SIZE, pictures.SIZE, 3)


def test_settings_round_trip_through_the_command_line() -> None:
    settings = demo_training.DemoPipelineTrainingSettings(seed=5, unet_steps=10, unet_lr=5e-4)
    arguments = " ".join(demo_training.settings_arguments(settings)).split()
    output, parsed = demo_training.parse_arguments([*arguments, "--output", "somewhere"])
    assert parsed == settings and output == Path("somewhere")
    assert demo_training.settings_arguments(demo_training.DemoPipelineTrainingSettings()) == []
