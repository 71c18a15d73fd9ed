"""The trained shapes pipeline in sdcnn/demo/assets draws its prompts; training reproduces.

The tests that load or train a pipeline are marked ``pipeline`` (diffusers, a few seconds each).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.fileio import sha256_file
from sdcnn.demo import pictures
from sdcnn.demo import training as demo_training
from sdcnn.demo.check import accuracy_table, draw_and_check, load_shapes_pipeline

COMMITTED = demo_training.DEFAULT_OUTPUT
# every colour and every shape, and the longest prompt (the tokenizer must not cut it)
PROMPTS = ["a red circle", "a green square", "a blue triangle", "a yellow triangle"]
SEEDS = [0, 1]
COMPONENTS = ["scheduler", "text_encoder", "tokenizer", "unet", "vae"]


@contextlib.contextmanager
def kept_torch_threads() -> Iterator[None]:
    """Loading and training set torch's thread count: put it back for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def committed_pipeline() -> Iterator[Any]:
    with kept_torch_threads():
        yield load_shapes_pipeline(COMMITTED, threads=2)


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
def test_tokenizer_keeps_every_vocabulary_prompt_whole(committed_pipeline: Any) -> None:
    tokenizer = committed_pipeline.tokenizer
    for prompt in pictures.vocabulary_prompts():
        assert len(tokenizer(prompt).input_ids) <= tokenizer.model_max_length, prompt
    assert committed_pipeline.text_encoder.config.max_position_embeddings == (
        tokenizer.model_max_length
    )


@pytest.mark.pipeline
def test_committed_pipeline_draws_the_prompts(committed_pipeline: Any) -> None:
    samples = draw_and_check(committed_pipeline, PROMPTS, SEEDS, steps=20, guidance=4.0)
    assert all(sample.pixels.shape == (pictures.SIZE, pictures.SIZE, 3) for sample in samples)
    assert all(sample.correct for sample in samples), "\n" + accuracy_table(samples)


@pytest.mark.pipeline
def test_training_is_reproducible_and_saves_a_loadable_pipeline(
    tmp_path: Path, torch_threads: None
) -> None:
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


@pytest.mark.pipeline
def test_an_image_to_image_checkpoint_loads_as_its_text_to_image_sibling(
    committed_pipeline: Any, tmp_path: Path
) -> None:
    """load_pipeline loads the class model_index.json names; one that needs an input image
    becomes the text-to-image pipeline on the same components, as AutoPipeline did."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    from sdcnn.generate.pipeline import as_text_to_image, needs_an_image

    assert type(committed_pipeline) is StableDiffusionPipeline
    assert not needs_an_image(committed_pipeline)
    assert as_text_to_image(committed_pipeline) is committed_pipeline
    img2img = StableDiffusionImg2ImgPipeline(**committed_pipeline.components)
    assert needs_an_image(img2img)
    img2img.save_pretrained(tmp_path / "img2img")
    with kept_torch_threads():
        loaded = load_shapes_pipeline(tmp_path / "img2img", threads=2)
    assert type(loaded) is StableDiffusionPipeline
    for name, weights in committed_pipeline.unet.state_dict().items():
        assert loaded.unet.state_dict()[name].equal(weights), name
