"""The trained shapes pipeline in sdcnn/demo/assets draws its prompts (sdcnn/demo/check.py).

The tests that load a pipeline are marked ``pipeline`` (diffusers, a few seconds each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdcnn.demo import pictures
from sdcnn.demo.check import accuracy_table, draw_and_check, load_shapes_pipeline
from tests.support.demo import COMMITTED, kept_torch_threads

# every colour and every shape, and the longest prompt (the tokenizer must not cut it)
PROMPTS = ["a red circle", "a green square", "a blue triangle", "a yellow triangle"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def committed_pipeline() -> Iterator[Any]:
    with kept_torch_threads():
        yield load_shapes_pipeline(COMMITTED, threads=2)


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
