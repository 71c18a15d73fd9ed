"""The schema's settings and a base generation, shared by the tests that walk the schema:
every setting decides an output (an image's key, a tensor, the predictions) or is listed
with the reason it does not (tests/unit/generate/test_shard_generator.py,
tests/unit/preprocess/test_image_to_tensor.py, tests/unit/classify/test_prediction.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sdcnn.config.check import check_config, load_schema
from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
from tests.support.workspace import REPO

SCHEMA = load_schema(REPO / "config" / "schema.yaml")
PROPERTIES = SCHEMA["properties"]
DEFAULTS = check_config({"prompts": {"p": {"text": "a circle"}}}, REPO / "config" / "schema.yaml")


# a changed value for each setting the key must follow
NEW_GENERATION_VALUES = {
    "steps": 3,
    "guidance_scale": 5.0,
    "height": 72,
    "width": 56,
    "scheduler": "euler",
    "base_seed": 8,
    "threads": 2,
    "precision": "fp16",
    "batch_size": 2,
    "compile": True,
    "true_cfg_scale": 2.0,
    "vae_tiling": "always",
    "offload": "model",
}
NEW_PROMPT_VALUES = {"text": "a blue square", "negative_prompt": "green"}


def base_settings() -> GenerationSettings:
    small = {**DEFAULTS["generation"], "steps": 2, "height": 64, "width": 64}
    return GenerationSettings.from_config(small)


BASE_PROMPT = PromptSpec(prompt_id="p", text="a red circle", negative_prompt="", n_images=2)


def changed(key: str) -> tuple[GenerationSettings, PromptSpec]:
    name = key.rsplit(".", 1)[1]
    if key.startswith("generation."):
        return replace(base_settings(), **{name: NEW_GENERATION_VALUES[name]}), BASE_PROMPT
    return base_settings(), replace(BASE_PROMPT, **{name: NEW_PROMPT_VALUES[name]})


def unplaced_keys(section: str, changed: Iterable[str], unchanged: Iterable[str]) -> list[str]:
    """The schema's keys of ``section`` that a test neither changes (``changed``: names in
    the section) nor says why they change nothing (``unchanged``: dotted keys)."""
    keys = [f"{section}.{name}" for name in PROPERTIES[section]["properties"]]
    return [key for key in keys if key.split(".")[1] not in changed and key not in unchanged]
