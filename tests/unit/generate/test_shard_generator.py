"""What decides an image (sdcnn/generate/shard_generator.py), walked over the schema: every
``generation`` setting and every prompt field either changes each image's key in the image
store (and a real generation then makes the image again instead of reusing it), or is
listed with the reason it does not.

A new key in config/schema.yaml fails these tests until it is placed.  The generate rule's
params and the store key come from one definition
(``sdcnn.generate.pipeline.GenerationSettings``), so a setting Snakemake tracks is a setting
the store tracks."""

from __future__ import annotations

import shutil
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.shards import ShardLayout
from sdcnn.generate.image_store import ImageStore
from sdcnn.generate.model_source import ModelSource
from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
from sdcnn.generate.shard_generator import ShardGenerator, ShardResult, generate_shard
from tests.support.settings import (
    BASE_PROMPT,
    NEW_GENERATION_VALUES,
    NEW_PROMPT_VALUES,
    PROPERTIES,
    base_settings,
    changed,
)


@pytest.fixture(autouse=True)
def torch_threads_restored() -> Any:
    """generate_shard pins torch's threads for the process: put them back after each test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- generation: the image store key

# settings that decide no image's pixels as they are written, and why
NOT_IN_THE_IMAGE_KEY = {
    "generation.gpu": "a resource: the key holds the device the image was made on",
    "prompts.*.n_images": "says which images a prompt has, not what one looks like",
    "prompts.*.label": "what the images are meant to show, not what they look like",
}


def generation_keys_in_schema() -> list[str]:
    return [f"generation.{name}" for name in PROPERTIES["generation"]["properties"]]


def prompt_fields_in_schema() -> list[str]:
    item = PROPERTIES["prompts"]["additionalProperties"]["properties"]
    return [f"prompts.*.{name}" for name in item]


def test_every_generation_setting_and_prompt_field_is_placed() -> None:
    in_key = {f"generation.{field.name}" for field in fields(GenerationSettings)}
    in_key |= {f"prompts.*.{name}" for name in NEW_PROMPT_VALUES}
    unplaced = [
        key
        for key in generation_keys_in_schema() + prompt_fields_in_schema()
        if key not in in_key and key not in NOT_IN_THE_IMAGE_KEY
    ]
    assert unplaced == [], (
        f"{unplaced}: add them to GenerationSettings (they decide pixels: params and store key) "
        "or to NOT_IN_THE_IMAGE_KEY with the reason"
    )
    assert set(NEW_GENERATION_VALUES) == {field.name for field in fields(GenerationSettings)}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdcnn.generate.model_source import DEMO_PIPELINE_DIR

    folder = tmp_path_factory.mktemp("model") / "demo"
    shutil.copytree(DEMO_PIPELINE_DIR, folder)
    return folder


def image_keys(
    store: ImageStore, model_folder: Path, settings: GenerationSettings, prompt: PromptSpec
) -> list[dict[str, Any]]:
    generator = ShardGenerator(
        settings=settings,
        model=ModelSource("local", str(model_folder), "demo"),
        allow_download=False,
        device="cpu",
        dtype="torch.float32",
        store=store,
    )
    return generator.prompt_image_keys(prompt)


CHANGES = [f"generation.{name}" for name in NEW_GENERATION_VALUES] + [
    f"prompts.*.{name}" for name in NEW_PROMPT_VALUES
]


@pytest.mark.parametrize("key", CHANGES)
def test_the_image_key_follows_every_setting(key: str, model_folder: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    before = image_keys(store, model_folder, base_settings(), BASE_PROMPT)
    after = image_keys(store, model_folder, *changed(key))
    same = [index for index, (a, b) in enumerate(zip(before, after, strict=True)) if a == b]
    assert same == [], f"changing {key} leaves the store key of image(s) {same} unchanged"


@pytest.mark.parametrize("key", sorted(NOT_IN_THE_IMAGE_KEY))
def test_the_listed_settings_keep_the_image_key(
    key: str, model_folder: Path, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path)
    before = image_keys(store, model_folder, base_settings(), BASE_PROMPT)
    if key == "prompts.*.n_images":
        more = image_keys(store, model_folder, base_settings(), replace(BASE_PROMPT, n_images=3))
        assert more[:2] == before, "one more image changed the keys of the others"
    elif key == "prompts.*.label":  # the generator's PromptSpec has no label at all
        assert "label" not in {field.name for field in fields(PromptSpec)}
    else:  # generation.gpu: not a setting at all, the device used is in the key
        assert all(key_["device"] == "cpu" for key_ in before)


# settings whose real regeneration is checked (compile: torch.compile on a CPU takes minutes)
REGENERATED = [key for key in CHANGES if key != "generation.compile"]


@pytest.mark.parametrize("key", REGENERATED)
def test_the_store_makes_the_image_again_after_a_change(
    key: str, model_folder: Path, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path / "store")
    model = ModelSource("local", str(model_folder), "demo")

    def run(settings: GenerationSettings, prompt: PromptSpec, name: str) -> ShardResult:
        return generate_shard(
            output_dir=tmp_path / name,
            prompts=[prompt],
            layout=ShardLayout(False),
            settings=settings,
            model=model,
            allow_download=False,
            gpus=0,
            store=store,
        )

    assert run(base_settings(), BASE_PROMPT, "first").counts == {"reused": 0, "generated": 2}
    assert run(base_settings(), BASE_PROMPT, "again").counts == {"reused": 2, "generated": 0}
    counts = run(*changed(key), "changed").counts
    assert counts == {"reused": 0, "generated": 2}, f"after changing {key}: {counts}"
