"""The shipped config validates against the schema, and the schema fills in defaults."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO, SMALL_CONFIG

SCHEMA_PATH = REPO / "config" / "schema.yaml"


def load_default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_reproduces_the_seed_project() -> None:
    config = load_default_config()
    validate(config, str(SCHEMA_PATH))
    city = config["prompts"]["city"]
    assert city["text"] == "A futuristic city at sunset" and city["n_images"] == 3
    assert len(config["prompts"]) >= 2
    assert config["preprocess"]["size"] == 224 and config["preprocess"]["grayscale"] is True
    assert len(config["classifier"]["labels"]) == 10
    assert config["model"]["source"] == "demo"


def test_defaults_are_filled_in() -> None:
    config = {"prompts": {"p": {"text": "x"}}}
    validate(config, str(SCHEMA_PATH))
    assert config["prompts"]["p"] == {"text": "x", "negative_prompt": "", "n_images": 1}
    assert config["generation"]["steps"] == 25
    assert config["classifier"]["backend"] == "torch"
    assert config["preprocess"]["interpolation"] == "auto"


@pytest.mark.parametrize(
    "path, value",
    [
        (("generation", "height"), 100),
        (("generation", "steps"), 0),
        (("prompts", "city", "n_images"), 0),
        (("prompts", "city", "text"), "   "),
        (("classifier", "labels"), []),
        (("generation", "scheduler"), "nonsense"),
        (("generation", "stepz"), 3),
    ],
)
def test_schema_rejects(path: tuple[str, ...], value: object) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    target = config
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(WorkflowError):
        validate(config, str(SCHEMA_PATH))
