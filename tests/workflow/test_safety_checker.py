"""A pipeline with a safety checker: flagged images are recorded, warned about, documented.

The demo pipeline gets a real diffusers ``StableDiffusionSafetyChecker`` (a tiny CLIP
vision model) whose thresholds make it flag every image, or none, and is saved and loaded
as a real checkpoint folder is (as the Stable Diffusion 1.5 folder has one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import copy_workflow


def save_pipeline_with_checker(folder: Path, *, flag_everything: bool) -> Path:
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig, CLIPImageProcessor

    from sdcnn.demo.model import build_demo_pipeline

    pipeline = build_demo_pipeline(seed=0)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=8,
    )
    checker = StableDiffusionSafetyChecker(config)
    # a score is cosine similarity (in [-1, 1]) less the weight: above 0 flags the image
    weight = -2.0 if flag_everything else 2.0
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(weight)
        checker.special_care_embeds_weights.fill_(weight)
    pipeline.register_modules(
        safety_checker=checker,
        feature_extractor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
    )
    pipeline.register_to_config(requires_safety_checker=True)
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def flagging_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real run of one prompt with a checker that flags every image: (folder, console)."""
    config = {
        **SMALL_CONFIG,
        "prompts": {"city": {"text": "A futuristic city at sunset", "n_images": 2}},
        "model": {"source": "./models/checked"},
        "classifier": {**SMALL_CONFIG["classifier"], "weights": "glorot"},  # no labels
    }
    workdir = copy_workflow(tmp_path_factory.mktemp("checked_run"), config)
    save_pipeline_with_checker(workdir / "models" / "checked", flag_everything=True)
    result = run_snakemake(workdir)
    return workdir, result.stdout + result.stderr


@pytest.mark.pipeline
def test_flagged_images_are_recorded_everywhere(flagging_run: tuple[Path, str]) -> None:
    import csv
    import json

    workdir, console = flagging_run
    results = workdir / "results"
    for index in range(2):
        with Image.open(results / "images" / "city" / f"city_{index:03d}.png") as image:
            assert image.text["safety_checker"] == "flagged"
            assert not np.asarray(image).any(), "a flagged image is black"
    document = json.loads((results / "predictions" / "city.json").read_text())
    assert [image["safety_flagged"] for image in document["images"]] == [True, True]
    with open(results / "summary.csv", newline="") as handle:
        assert [row["safety_flagged"] for row in csv.DictReader(handle)] == ["true", "true"]
    log = (results / "logs" / "generate" / "city.log").read_text()
    assert "city_000 was flagged by the model's safety checker" in log
    assert "the model's safety checker flagged 2 image(s), which are now black" in console


def test_a_checker_that_passes_records_passed(tmp_path: Path) -> None:
    from sdcnn.core.shards import ShardLayout
    from sdcnn.generate.model_source import ModelSource
    from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
    from sdcnn.generate.shard_generator import generate_shard

    folder = save_pipeline_with_checker(tmp_path / "model", flag_everything=False)
    settings = GenerationSettings(
        steps=2, guidance_scale=7.5, height=64, width=64, scheduler="ddim", base_seed=1
    )
    result = generate_shard(
        output_dir=tmp_path / "images",
        prompts=[PromptSpec("p", "a red circle", "", 1)],
        layout=ShardLayout(False),
        settings=settings,
        model=ModelSource("local", str(folder), "./model"),
        allow_download=False,
        gpus=0,
    )
    assert result.flagged == []
    with Image.open(tmp_path / "images" / "p_000.png") as image:
        assert image.text["safety_checker"] == "passed"
        assert np.asarray(image).any()


@pytest.mark.pipeline
def test_a_pipeline_without_checker_records_unchecked(small_run: Path) -> None:
    with Image.open(small_run / "results" / "images" / "city" / "city_000.png") as image:
        assert image.text["safety_checker"] == "unchecked"
