"""The config check (sdcnn/config/check.py): defaults, and one clear message per bad value."""

from __future__ import annotations

import copy
import datetime
import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.numpy import save_file
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from sdcnn.classify.weights import CNNWeights, init_weights, save_weights
from sdcnn.config.check import (
    ConfigError,
    _unique,
    check_config,
    check_config_file,
    check_prompt_ids,
    check_scheduler_fits,
    load_schema,
    pipeline_passes_sigmas,
    refuse_duplicate_keys,
    validate_config,
)
from sdcnn.config.prompts import checked_prompts
from sdcnn.generate.model_source import DEMO_PIPELINE_DIR
from tests.support.configs import SMALL_CONFIG, config_with
from tests.support.locales import ascii_locale
from tests.support.workspace import REPO

SCHEMA_PATH = REPO / "config" / "schema.yaml"


def load_default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def re_search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def config_error(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA_PATH)
    return str(caught.value)


def test_default_config_is_the_trained_shapes_demo() -> None:
    config = check_config(load_default_config(), SCHEMA_PATH, [REPO / "config" / "config.yaml"])
    prompts = checked_prompts(config, load_schema(SCHEMA_PATH))
    assert config["model"]["source"] == "demo"
    assert config["classifier"]["weights"] == "trained"
    assert config["classifier"]["labels"] == ["circle", "square", "triangle"]
    # every prompt is labelled, and every label has prompts to learn from
    assert {prompt["label"] for prompt in prompts.values()} == {"circle", "square", "triangle"}


def test_city_config_reproduces_the_seed_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/city.yaml merged over the default, as ``--configfile`` does (its checkpoint
    folder replaced by the shipped demo pipeline, the only one on disk here)."""
    city = yaml.safe_load((REPO / "config" / "city.yaml").read_text())
    assert city["model"]["source"] == "./models/sd15"
    merged = load_default_config()
    update_config(merged, city)
    merged["model"]["source"] = str(DEMO_PIPELINE_DIR)
    config = check_config(merged, SCHEMA_PATH)
    monkeypatch.chdir(REPO)  # the sheet's path is relative to the working directory
    prompts = checked_prompts(config, load_schema(SCHEMA_PATH))
    assert list(prompts) == ["city"]
    assert prompts["city"]["text"] == "A futuristic city at sunset"
    assert prompts["city"]["n_images"] == 3
    assert config["generation"]["steps"] == 50 and config["generation"]["height"] == 512
    assert config["preprocess"]["size"] == 224 and config["preprocess"]["grayscale"] is True
    assert len(config["classifier"]["labels"]) == 10
    assert config["classifier"]["weights"] == "glorot"


def test_defaults_are_filled_in() -> None:
    config = check_config({"prompts": {"p": {"text": "x"}}}, SCHEMA_PATH)
    assert config["prompts"]["p"] == {
        "text": "x",
        "negative_prompt": "",
        "n_images": 1,
        "label": None,
    }
    assert config["generation"]["steps"] == 25
    assert config["classifier"]["backend"] == "torch"
    assert config["preprocess"]["interpolation"] == "auto"
    assert config["classifier"]["weights"] == "glorot"


def test_defaults_are_not_shared_between_configs() -> None:
    first = check_config({"prompts": {"p": {"text": "x"}}}, SCHEMA_PATH)
    first["classifier"]["labels"].append("changed")
    second = check_config({"prompts": {"p": {"text": "x"}}}, SCHEMA_PATH)
    assert "changed" not in second["classifier"]["labels"]


# (key path, bad value, the message: names the key and says what was expected)
BAD_VALUES = [
    (
        ("generation", "stepz"),
        3,
        r"^config key generation\.stepz: unknown key \(did you mean "
        r"generation\.steps\?\); the keys of generation are steps, guidance_scale",
    ),
    (("promts",), {}, r"^config key promts: unknown key \(did you mean prompts\?\)"),
    (("prompts",), {}, r"^config key prompts: has 0 entries, expected at least 1"),
    (
        ("prompts",),
        None,
        r"^config key prompts: is empty \(null\), expected a mapping or a "
        r"string \(at "
        r"least one named prompt",
    ),
    (("prompts", "city", "text"), "", r"^config key prompts\.city\.text: '' is empty or blank"),
    (
        ("prompts", "city", "text"),
        " \t\n",
        r"^config key prompts\.city\.text: .* is empty or "
        r"blank; expected the prompt text, not blank",
    ),
    (
        ("prompts", "city", "n_images"),
        0,
        r"^config key prompts\.city\.n_images: 0 is less than "
        r"the minimum 1$",
    ),
    (
        ("prompts", "city", "n_images"),
        "3",
        r"^config key prompts\.city\.n_images: '3' is a "
        r"string, expected an integer \(number of images made from this prompt\)$",
    ),
    (
        ("prompts", "city", "negative"),
        "x",
        r"^config key prompts\.city\.negative: unknown key "
        r"\(did you mean prompts\.city\.negative_prompt\?\)",
    ),
    (("generation", "steps"), 0, r"^config key generation\.steps: 0 is less than the minimum 1$"),
    (
        ("generation", "guidance_scale"),
        -0.5,
        r"^config key generation\.guidance_scale: -0\.5 is "
        r"less than the minimum 0$",
    ),
    (
        ("generation", "height"),
        100,
        r"^config key generation\.height: 100 is not a multiple "
        r"of 8$",
    ),
    (("generation", "width"), 0, r"^config key generation\.width: 0 is less than the minimum 8$"),
    (
        ("generation", "height"),
        -64,
        r"^config key generation\.height: -64 is less than the "
        r"minimum 8$",
    ),
    (
        ("generation", "width"),
        "64",
        r"^config key generation\.width: '64' is a string, "
        r"expected an integer or null \(image width in pixels",
    ),
    (
        ("generation", "scheduler"),
        "ddimm",
        r"^config key generation\.scheduler: 'ddimm' is not "
        r"one of default, ddim, .* \(did you mean 'ddim'\?\)$",
    ),
    (("generation",), None, r"^config key generation: is empty \(null\), expected a mapping$"),
    (("preprocess", "size"), 4, r"^config key preprocess\.size: 4 is less than the minimum 8$"),
    (("classifier", "backend"), "jax", r"^config key classifier\.backend: 'jax' is not one of "),
    (
        ("classifier", "labels"),
        [],
        r"^config key classifier\.labels: \[\] has 0 items, expected "
        r"at least 1$",
    ),
    (
        ("classifier", "labels"),
        ["cat", "cat"],
        r"^config key classifier\.labels: 'cat' appears "
        r"more than once$",
    ),
    (
        ("classifier", "labels"),
        ["cat", " "],
        r"^config key classifier\.labels\[1\]: ' ' is "
        r"empty or blank",
    ),
    (("classifier", "weights"), "", r"^config key classifier\.weights: '' is empty or blank"),
    (
        ("model", "source"),
        " demo",
        r"^config key model\.source: ' demo' is not allowed; expected "
        r"'demo' \(the shapes model shipped with the package\), a local diffusers pipeline folder",
    ),
    (
        ("model", "source"),
        "no such model",
        r"^config key model\.source: model\.source 'no such "
        r"model' is neither 'demo', an existing local folder, nor a Hugging Face id",
    ),
    (
        ("model", "source"),
        "./models/nowhere",
        r"^config key model\.source: model folder "
        r"'\./models/nowhere' does not exist .*hf download <organisation/name> --local-dir "
        r"\./models/nowhere",
    ),
]


@pytest.mark.parametrize(
    "path, value, message", BAD_VALUES, ids=[".".join(case[0]) for case in BAD_VALUES]
)
def test_bad_value_gets_one_message_naming_the_key(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    text = config_error(config_with(path, value))
    assert "\n" not in text  # one problem, one line, no jsonschema dump
    assert re_search(message, text), text


def test_prompts_are_required() -> None:
    text = config_error({"generation": {"steps": 2}})
    assert text.startswith("config key prompts: missing, but required; expected at least one")


@pytest.mark.parametrize(
    "prompt_id",
    ["../x", "/abs", "has space", "", "a" * 65, ".hidden", "x/y", "é", "-dash", "a.b", "a\nb"],
)
def test_unsafe_prompt_ids_are_refused(prompt_id: str) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"][prompt_id] = {"text": "a prompt"}
    text = config_error(config)
    assert text.startswith(f"config key prompts: the name {prompt_id[:50]!r}"[:60]), text
    assert "expected a prompt id of 1 to 64 letters, digits, '_' or '-'" in text


def test_longest_safe_prompt_id_is_accepted() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"]["a" * 64] = {"text": "a prompt"}
    check_config(config, SCHEMA_PATH)


def test_prompt_ids_differing_only_in_case_are_refused() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"]["City"] = {"text": "another city"}
    assert "the ids 'city' and 'City' differ only in case" in config_error(config)


def test_several_problems_are_all_listed_under_the_most_relevant() -> None:
    config = config_with(("generation", "height"), 100)
    config["preprocess"] = {"size": 2}
    first, *others = config_error(config).splitlines()
    assert first.startswith("config key ")
    assert others[0] == "other problems:"
    assert len(others) == 2 and others[1].startswith("  config key ")


# ---- duplicate keys: Snakemake's YAML loader silently keeps the last one


def test_duplicate_yaml_key_is_refused_with_its_path_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("prompts:\n  city:\n    text: a\ngeneration:\n  steps: 2\n  steps: 3\n")
    with pytest.raises(ConfigError) as caught:
        check_config_file(path)
    assert str(caught.value) == (
        f"config file {path}: key generation.steps is given twice (lines 5 and 6); "
        "YAML would silently keep only the last one, so remove one of them"
    )


def test_duplicate_prompt_id_and_list_item_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("prompts:\n  city: {text: a}\n  city: {text: b}\n")
    with pytest.raises(ConfigError, match=r"key prompts\.city is given twice \(lines 2 and 3\)"):
        check_config_file(path)
    path.write_text("x:\n  - {a: 1, a: 2}\n")
    with pytest.raises(ConfigError, match=r"key x\[0\]\.a is given twice"):
        check_config_file(path)


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"prompts": {"a": {"text": "x"}}, "prompts": {}}')
    with pytest.raises(ConfigError, match=r"config\.json: key 'prompts' is given twice"):
        check_config_file(path)


def test_yaml_merge_keys_may_override(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("base: &b {text: a, n_images: 2}\nprompts:\n  p:\n    <<: *b\n    text: c\n")
    check_config_file(path)


def test_check_config_reads_the_given_files(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("prompts: {a: {text: x}}\nprompts: {b: {text: y}}\n")
    config = yaml.safe_load(path.read_text())  # what Snakemake would have: only 'b'
    with pytest.raises(ConfigError, match="key prompts is given twice"):
        check_config(config, SCHEMA_PATH, [path])


# ---- a given weights file: only its header is read


def weights_config(path: Path, labels: list[str], **preprocess: Any) -> dict[str, Any]:
    config = config_with(("classifier", "weights"), str(path))
    config["classifier"]["labels"] = labels
    config["preprocess"] = {"size": 16, "grayscale": True, **preprocess}
    return config


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    """Weights for 1-channel 16x16 tensors and the labels cat, dog."""
    path = tmp_path / "cnn.safetensors"
    save_weights(path, CNNWeights(init_weights(1, 1, 16, 2).tensors, labels=["cat", "dog"]))
    return path


def test_fitting_weights_file_is_accepted(weights_file: Path) -> None:
    check_config(weights_config(weights_file, ["cat", "dog"]), SCHEMA_PATH)


@pytest.mark.parametrize(
    "labels, preprocess, message",
    [
        (
            ["cat", "dog", "ship"],
            {},
            r"^config key classifier\.labels: 3 labels, but weights file "
            r".*cnn\.safetensors has 2 outputs$",
        ),
        (
            ["dog", "cat"],
            {},
            r"^config key classifier\.labels: \['dog', 'cat'\] do not match the "
            r"labels recorded in weights file .*cnn\.safetensors: \['cat', 'dog'\]$",
        ),
        (
            ["cat", "dog"],
            {"grayscale": False},
            r"^config key preprocess\.grayscale: the tensors "
            r"have 3 channel\(s\), but weights file .*cnn\.safetensors expects 1$",
        ),
        (
            ["cat", "dog"],
            {"size": 32},
            r"^config key preprocess\.size: 32 gives 2048 dense "
            r"inputs, but weights file .*cnn\.safetensors has 512$",
        ),
    ],
)
def test_weights_file_that_does_not_fit_is_refused(
    weights_file: Path, labels: list[str], preprocess: dict[str, Any], message: str
) -> None:
    assert re_search(message, config_error(weights_config(weights_file, labels, **preprocess)))


def test_weights_file_without_recorded_labels_is_checked_by_shape(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(init_weights(1, 1, 16, 2).tensors, str(path))
    check_config(weights_config(path, ["x", "y"]), SCHEMA_PATH)
    assert "3 labels" in config_error(weights_config(path, ["x", "y", "z"]))


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"weights file .*missing\.safetensors does not exist"),
        (b"", r"is not a safetensors file"),
        (
            pickle.dumps({"conv1.weight": [1.0]}),
            r"is not a safetensors file \(it looks like a "
            r"pickle or torch\.save checkpoint, which is never loaded",
        ),
        (b"PK\x03\x04" + bytes(100), r"it looks like a pickle or torch\.save checkpoint"),
    ],
)
def test_weights_file_that_is_not_safetensors_is_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "missing.safetensors"
    if content is not None:
        path.write_bytes(content)
    text = config_error(weights_config(path, ["cat", "dog"]))
    assert text.startswith("config key classifier.weights: weights file ")
    assert re_search(message, text), text


def test_weights_file_with_wrong_tensors_is_refused(tmp_path: Path) -> None:
    tensors = init_weights(1, 1, 16, 2).tensors
    tensors["conv2.weight"] = tensors["conv2.weight"][:, :8]
    save_file(tensors, str(tmp_path / "w.safetensors"))
    text = config_error(weights_config(tmp_path / "w.safetensors", ["cat", "dog"]))
    assert re_search(r"w\.safetensors: conv2\.weight has shape \(32, 8, 3, 3\), expected", text)
    tensors = init_weights(1, 1, 16, 2).tensors
    tensors["dense.bias"] = tensors["dense.bias"].astype("float16")
    save_file(tensors, str(tmp_path / "w.safetensors"))
    text = config_error(weights_config(tmp_path / "w.safetensors", ["cat", "dog"]))
    assert "dense.bias is F16, expected float32" in text


# ---- a local model folder


def test_model_folder_without_model_index_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sd" / "inner").mkdir(parents=True)
    (tmp_path / "sd" / "inner" / "model_index.json").write_text("{}")
    text = config_error(config_with(("model", "source"), str(tmp_path / "sd")))
    assert text.startswith(f"config key model.source: model folder '{tmp_path / 'sd'}' is not a ")
    assert f"did you mean '{tmp_path / 'sd' / 'inner'}'?" in text
    assert "hf download" in text


# ---- --config: Snakemake hands nested values over as strings


def coerced(config: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    from sdcnn.config.check import coerce_command_line

    merged = copy.deepcopy(config)
    for section, values in given.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    coerce_command_line(merged, given, yaml.safe_load(SCHEMA_PATH.read_text()))
    return check_config(merged, SCHEMA_PATH)


def test_nested_command_line_strings_become_what_the_schema_wants() -> None:
    given = {
        "generation": {"steps": "5", "guidance_scale": "4.5", "compile": "true", "gpu": "1"},
        "classifier": {"labels": ["a", "b", "c"], "weights": "null"},
        "prompts": {"new": {"text": "123", "n_images": "2"}},
        "shards": "null",
    }
    config = coerced(SMALL_CONFIG, given)
    assert config["generation"]["steps"] == 5 and config["generation"]["guidance_scale"] == 4.5
    assert config["generation"]["compile"] is True and config["generation"]["gpu"] == 1
    assert config["classifier"]["weights"] is None and config["shards"] is None  # null: glorot
    assert config["prompts"]["new"] == {
        "text": "123",
        "n_images": 2,
        "negative_prompt": "",
        "label": None,
    }
    assert config["prompts"]["city"]["n_images"] == 3  # merged, not replaced


@pytest.mark.parametrize(
    "given, message",
    [
        (
            {"generation": {"steps": "many"}},
            r"^config key generation\.steps: 'many' \(given with "
            r"--config\) is not an integer$",
        ),
        (
            {"generation": {"compile": "maybe"}},
            r"^config key generation\.compile: 'maybe' .*is "
            r"not true or false",
        ),
        ({"shards": "two"}, r"^config key shards: 'two' .*is not an integer or null"),
        (
            {"prompts": {"city": {"n_images": "3.5"}}},
            r"^config key prompts\.city\.n_images: "
            r"'3\.5' .*not an integer",
        ),
    ],
)
def test_a_command_line_value_that_cannot_be_coerced_names_the_key(
    given: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        coerced(SMALL_CONFIG, given)


def test_a_string_in_a_config_file_is_still_refused() -> None:
    """Only --config values are coerced: '3' written in YAML stays a mistake."""
    text = config_error(config_with(("prompts", "city", "n_images"), "3"))
    assert "'3' is a string, expected an integer" in text


# ---- errors carry their key: ConfigError.key is the key the message starts with


def raised_config_error(config: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA_PATH)
    return caught.value


@pytest.mark.parametrize(
    "config, key",
    [
        (config_with(("generation", "steps"), "many"), "generation.steps"),
        (config_with(("generation", "stpes"), 5), "generation.stpes"),  # an unknown key
        (config_with(("prompts", "city", "n_images"), 0), "prompts.city.n_images"),
        (config_with(("prompts", "City"), {"text": "x"}), "prompts"),  # ids differing in case
        (config_with(("model", "source"), "./no/such/folder"), "model.source"),
    ],
)
def test_a_config_error_carries_the_key_its_message_names(config: dict[str, Any], key: str) -> None:
    error = raised_config_error(config)
    assert error.key == key
    assert str(error) == f"config key {key}: {error.problem}"


def test_several_problems_carry_the_best_ones_key() -> None:
    config = config_with(("generation", "steps"), "many")
    config["generation"]["guidance_scale"] = "high"
    error = raised_config_error(config)
    assert "\nother problems:\n" in error.problem
    assert str(error) == f"config key {error.key}: {error.problem}"
    assert error.key in ("generation.steps", "generation.guidance_scale")


def test_a_weights_mismatch_carries_the_key_to_change(weights_file: Path) -> None:
    error = raised_config_error(weights_config(weights_file, ["cat", "dog", "cow"]))
    assert error.key == "classifier.labels"
    assert error.problem.startswith("3 labels, but weights file ")
    error = raised_config_error(weights_config(weights_file, ["cat", "dog"], grayscale=False))
    assert error.key == "preprocess.grayscale"


def test_a_command_line_value_error_carries_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        coerced(SMALL_CONFIG, {"shards": "two"})
    assert caught.value.key == "shards"
    assert caught.value.problem.startswith("'two' (given with --config) is not an integer")


def test_a_config_file_error_has_no_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("prompts:\n  a: 1\n  a: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        check_config_file(path)
    assert caught.value.key is None
    assert caught.value.problem == str(caught.value)
    assert str(caught.value).startswith(f"config file {path}: key prompts.a is given twice")


def test_a_config_error_keeps_its_key_through_pickling() -> None:
    error = ConfigError.of_key("generation.steps", "too many")
    copied = pickle.loads(pickle.dumps(error))
    assert (str(copied), copied.key, copied.problem) == (str(error), error.key, error.problem)


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 10, "description": "A count."},
        "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "m": {"type": "integer", "multipleOf": 8},
        "e": {"enum": ["alpha", "beta"]},
        "s": {"type": "string", "minLength": 1, "maxLength": 5},
        "p": {"type": "string", "pattern": "^[a-z]+$", "description": "Lower-case letters."},
        "l": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": True},
        "t": {"type": ["string", "null"]},
        "o": {"type": "object", "minProperties": 1, "description": "At least one entry."},
        "r": {
            "type": "object",
            "required": ["k"],
            "properties": {"k": {"type": "string", "description": "The key."}},
        },
        "r3": {"type": "object", "required": ["k"], "properties": {"j": {}}},
        "q": {"type": "string", "pattern": "^a"},
        "s2": {"type": "string", "minLength": 3},
        "u": {"type": "array", "uniqueItems": True},
        "z": {"type": "object", "additionalProperties": False},
    },
}
KEYS = "n, x, m, e, s, p, l, t, o, r, r3, q, s2, u, z"
LONG = "a" * 100

MESSAGES = [
    ({"n": "3"}, "config key n: '3' is a string, expected an integer (a count)"),
    ({"n": 0}, "config key n: 0 is less than the minimum 1"),
    ({"n": 11}, "config key n: 11 is more than the maximum 10"),
    ({"n": None}, "config key n: is empty (null), expected an integer (a count)"),
    ({"x": 0}, "config key x: 0 is not above 0"),
    ({"x": 1}, "config key x: 1 is not below 1"),
    ({"m": 12}, "config key m: 12 is not a multiple of 8"),
    ({"e": "alpah"}, "config key e: 'alpah' is not one of alpha, beta (did you mean 'alpha'?)"),
    ({"e": "zzz"}, "config key e: 'zzz' is not one of alpha, beta"),
    ({"s": ""}, "config key s: '' is empty"),
    ({"s": "toolong"}, "config key s: 'toolong' is 7 characters long, more than 5"),
    ({"s": LONG}, f"config key s: '{'a' * 56}... is 100 characters long, more than 5"),
    ({"p": "ABC"}, "config key p: 'ABC' is not allowed; expected lower-case letters"),
    ({"p": " "}, "config key p: ' ' is empty or blank; expected lower-case letters"),
    ({"l": []}, "config key l: [] has 0 items, expected at least 1"),
    ({"l": [1, 2, 3]}, "config key l: [1, 2, 3] has 3 items, expected at most 2"),
    ({"l": [1, 1]}, "config key l: 1 appears more than once"),
    ({"t": 5}, "config key t: 5 is an integer, expected a string or null"),
    ({"t": True}, "config key t: true is true or false, expected a string or null"),
    ({"t": 1.5}, "config key t: 1.5 is a number, expected a string or null"),
    ({"t": [1]}, "config key t: [1] is a list, expected a string or null"),
    ({"t": {}}, "config key t: {} is a mapping, expected a string or null"),
    (
        {"t": datetime.date(2020, 1, 2)},
        "config key t: datetime.date(2020, 1, 2) is date, expected a string or null",
    ),
    ({"o": {}}, "config key o: has 0 entries, expected at least 1; expected at least one entry"),
    ({"r": {}}, "config key r.k: missing, but required; expected the key"),
    ({"nn": 1}, f"config key nn: unknown key (did you mean n?); the keys are {KEYS}"),
    ({"zzzz": 1}, f"config key zzzz: unknown key; the keys are {KEYS}"),
    ({"s": "a" * 58}, f"config key s: '{'a' * 58}' is 58 characters long, more than 5"),
    ({"r3": {}}, "config key r3.k: missing, but required"),
    ({"q": "b"}, "config key q: 'b' is not allowed"),
    ({"s2": "ab"}, "config key s2: 'ab' is too short"),
    ({"u": [2, 1, 1]}, "config key u: 1 appears more than once"),
    ({"z": {"a": 1}}, "config key z.a: unknown key; the keys of z are "),
]


@pytest.mark.parametrize("config, message", MESSAGES, ids=[m for _, m in MESSAGES])
def test_each_schema_problem_has_its_message(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    assert str(caught.value) == message


def test_problems_at_the_top_level_say_so() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config([], SCHEMA)  # type: ignore[arg-type]
    assert str(caught.value) == "config key (top level): [] is a list, expected a mapping"
    names = {
        "type": "object",
        "propertyNames": {"pattern": "^[a-z]+$", "description": "Lower-case names."},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config({"A": 1}, names)
    assert str(caught.value) == (
        "config key (top level): the name 'A' is not allowed; expected lower-case names"
    )


def test_other_problems_are_listed_one_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"n": 0, "x": 0, "m": 12}, SCHEMA)
    first, heading, *others = str(caught.value).split("\n")
    assert heading == "other problems:", str(caught.value)
    assert sorted([first, *(line.removeprefix("  ") for line in others)]) == [
        "config key m: 12 is not a multiple of 8",
        "config key n: 0 is less than the minimum 1",
        "config key x: 0 is not above 0",
    ]
    assert all(line.startswith("  config key ") for line in others), others


def test_prompt_ids_differing_in_case_get_the_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        check_prompt_ids({"City": {}, "city": {}})
    assert str(caught.value) == (
        "config key prompts: the ids 'City' and 'city' differ only in case; their files would "
        "be the same on case-insensitive file systems"
    )


def test_config_files_named_twice_are_checked_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: 1\n")
    assert list(_unique([path, tmp_path / "." / "config.yaml", str(path)])) == [path]
    assert list(_unique([path, tmp_path / "other.yaml"])) == [path, tmp_path / "other.yaml"]


def test_a_key_given_twice_after_a_merge_key_is_found() -> None:
    text = "base: &b {x: 1}\nc:\n  <<: *b\n  y: 1\n  y: 2\n"
    with pytest.raises(
        yaml.constructor.ConstructorError,
        match=r"key c\.y is given twice "
        r"\(lines 4 and 5\)",
    ):
        refuse_duplicate_keys(text)


def test_two_merge_keys_and_complex_keys_are_no_duplicates() -> None:
    refuse_duplicate_keys("a: &a {x: 1}\nb: &b {y: 1}\nc:\n  <<: *a\n  <<: *b\n")
    refuse_duplicate_keys("? [1, 2]\n: one\n? [1, 2]\n: two\n")


def test_a_recursive_alias_is_walked_once() -> None:
    refuse_duplicate_keys("a: &x [1, *x]\n")
    with pytest.raises(yaml.constructor.ConstructorError, match=r"key a\[0\]\.k is given twice"):
        refuse_duplicate_keys("a: &x [{k: 1, k: 2}, *x]\n")


def test_a_config_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(str(path))}: while parsing"):
        check_config_file(path)
    path.write_text('{"a": 1, "a": 2}', encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=rf"^config file {re.escape(str(path))}: key 'a' is "
        "given twice; JSON would keep only the last one",
    ):
        check_config_file(path)
    path.write_text('{"a": {"b": 1}, "c": [1, 2]}', encoding="utf-8")
    check_config_file(path)


def test_a_prompt_id_ending_in_a_newline_is_refused_by_key() -> None:
    """The schema's "$" lets one final newline through; the id would become a file name."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"]["city\n"] = {"text": "a prompt"}
    error = raised_config_error(config)
    assert error.key == "prompts"
    assert str(error) == "config key prompts: the id 'city\\n' ends in a newline"


def test_a_keyword_without_own_wording_still_names_its_key() -> None:
    """A schema keyword _problem has no sentence for (here ``const: false``) falls back to
    jsonschema's message, under its key; only ``additionalProperties: false`` is an unknown
    key."""
    schema = {"type": "object", "properties": {"c": {"const": False}}}
    with pytest.raises(ConfigError) as caught:
        validate_config({"c": True}, schema)
    assert caught.value.key == "c"
    assert str(caught.value).startswith("config key c: ") and "unknown key" not in str(caught.value)


def test_a_huge_value_is_cut_in_every_message() -> None:
    """A value longer than MAX_SHOWN_CHARS is cut with "..." in each message, here
    multipleOf's (whose value jsonschema would show whole)."""
    value = 10**70 + 4  # 71 digits, not a multiple of 8
    with pytest.raises(ConfigError) as caught:
        validate_config({"m": value}, SCHEMA)
    assert str(caught.value) == f"config key m: {str(value)[:57]}... is not a multiple of 8"


def test_a_description_is_quoted_whole_less_its_final_full_stop() -> None:
    schema = {
        "type": "object",
        "properties": {
            "v": {"type": "string", "pattern": "^[a-z]", "description": "The OS, e.g. UNIX."}
        },
    }
    with pytest.raises(ConfigError) as caught:
        validate_config({"v": "X"}, schema)
    assert str(caught.value) == "config key v: 'X' is not allowed; expected the OS, e.g. UNIX"


def test_a_config_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Config files are UTF-8 (prompts may hold any text), also on a node whose locale is not."""
    path = tmp_path / "config.yaml"
    path.write_text("prompts:\n  cafe: {text: café crème}\n", encoding="utf-8")
    with ascii_locale():
        check_config_file(path)
        path.write_text("prompts:\n  a: {text: é}\n  a: {text: ü}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"key prompts\.a is given twice \(lines 2 and 3\)"):
            check_config_file(path)


# --config values through check_config, as rules/common.smk passes them


def test_check_config_coerces_the_values_given_with_config() -> None:
    """check_config's ``command_line`` (Snakemake's --config values) are coerced before the
    schema sees them: '5' given on the command line is the integer 5."""
    given = {"generation": {"steps": "5", "gpu": "1", "compile": "yes"}}
    config = copy.deepcopy(SMALL_CONFIG)
    config["generation"].update(given["generation"])
    checked = check_config(config, SCHEMA_PATH, command_line=given)
    assert checked["generation"]["steps"] == 5
    assert checked["generation"]["gpu"] == 1  # a $ref'd schema ($defs/gpu)
    assert checked["generation"]["compile"] is True


def test_an_unknown_key_given_with_config_gets_the_unknown_key_message() -> None:
    given = {"generation": {"stpes": "5"}}
    config = config_with(("generation", "stpes"), "5")
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA_PATH, command_line=given)
    assert str(caught.value).startswith(
        "config key generation.stpes: unknown key (did you mean generation.steps?)"
    )


def test_a_config_mapping_over_a_non_mapping_is_left_to_the_schema() -> None:
    """--config 'generation={steps: 5}' where the config's generation is null: the schema
    check names the key; the coercion does not stumble over it first."""
    config = config_with(("generation",), None)
    with pytest.raises(ConfigError) as caught:
        check_config(config, SCHEMA_PATH, command_line={"generation": {"steps": "5"}})
    assert str(caught.value) == "config key generation: is empty (null), expected a mapping"


COMMAND_LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "section": {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "c": {"type": ["integer", "null"], "description": "A count."},
                "l": {"type": ["integer", "array"]},
                "e": {"enum": ["alpha", "beta"]},
            },
        }
    },
    "properties": {"s": {"$ref": "#/$defs/section"}},
}


def coerced_by(given: dict[str, Any]) -> dict[str, Any]:
    from sdcnn.config.check import coerce_command_line

    return coerce_command_line(copy.deepcopy(given), given, COMMAND_LINE_SCHEMA)


def test_a_section_described_by_a_ref_is_coerced_too() -> None:
    assert coerced_by({"s": {"n": "3", "c": "null"}}) == {"s": {"n": 3, "c": None}}


def test_a_value_the_schema_does_not_describe_stays_as_given_and_the_rest_is_coerced() -> None:
    """A key the schema has no type for (``x``: none at all; ``e``: an enum) keeps its
    string, for the schema check to judge; the keys after it are still coerced."""
    given = {"s": {"x": "1", "e": "alpha", "n": "3"}}
    assert coerced_by(given) == {"s": {"x": "1", "e": "alpha", "n": 3}}


@pytest.mark.parametrize(
    "value, message",
    [
        (
            {"c": "many"},
            "config key s.c: 'many' (given with --config) is not an integer or "
            "null; expected a count",
        ),
        ({"l": "many"}, "config key s.l: 'many' (given with --config) is not an integer or a list"),
    ],
)
def test_a_value_that_fits_none_of_the_types_lists_them_all(
    value: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        coerced_by({"s": value})
    assert str(caught.value) == message


def labelled_config(**changes: object) -> dict:
    config = copy.deepcopy(SMALL_CONFIG)
    config.update(changes)
    return check_config(config, SCHEMA_PATH)


def test_a_label_not_in_the_labels_is_refused_naming_the_key() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"]["city"]["label"] = "shipp"
    with pytest.raises(
        ConfigError,
        match=r"^config key prompts\.city\.label: 'shipp' is not one "
        r"of classifier\.labels \(cat, dog, ship\) \(did you mean 'ship'\?\)$",
    ):
        checked_prompts(check_config(config, SCHEMA_PATH), load_schema(SCHEMA_PATH))


def test_a_sheet_label_not_in_the_labels_names_row_and_column(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.tsv").write_text("prompt_id\ttext\tlabel\na\tone\tship\nb\ttwo\tcow\nc\tthree\t\n")
    config = labelled_config(prompts="p.tsv")
    with pytest.raises(
        ConfigError,
        match=r"^prompt sheet p\.tsv, row 3, column label: 'cow' is "
        r"not one of classifier\.labels",
    ):
        checked_prompts(config, load_schema(SCHEMA_PATH))


def test_trained_weights_need_labelled_prompts() -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    for prompt in config["prompts"].values():
        del prompt["label"]
    with pytest.raises(
        ConfigError,
        match=r"^config key classifier\.weights: trained needs "
        r"labelled prompts",
    ):
        checked_prompts(check_config(config, SCHEMA_PATH), load_schema(SCHEMA_PATH))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", 0, r"training\.epochs: 0 is less than the minimum 1"),
        ("learning_rate", 0, r"training\.learning_rate: 0 is not above 0"),
        ("holdout_every", 1, r"training\.holdout_every: 1 is less than the minimum 2"),
        ("batch_size", "8", r"training\.batch_size: '8' is a string, expected an integer"),
        ("epoch", 3, r"training\.epoch: unknown key \(did you mean training\.epochs\?\)"),
    ],
)
def test_bad_training_settings_are_refused_naming_the_key(
    key: str, value: object, message: str
) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config["training"] = {**config["training"], key: value}
    with pytest.raises(ConfigError, match=rf"^config key {message}"):
        check_config(config, SCHEMA_PATH)


def test_gpu_and_precision_defaults() -> None:
    config = {"prompts": {"p": {"text": "x"}}}
    validate(config, str(SCHEMA_PATH))
    assert config["generation"]["gpu"] == 0 and config["generation"]["precision"] == "auto"
    assert config["classifier"]["gpu"] == 0


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("generation", "gpu", 2),
        ("generation", "gpu", -1),
        ("generation", "gpu", True),
        ("classifier", "gpu", 2),
        ("generation", "precision", "fp8"),
    ],
)
def test_schema_rejects(section: str, key: str, value: object) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config[section] = {**config.get(section, {}), key: value}
    with pytest.raises(WorkflowError):
        validate(config, str(SCHEMA_PATH))


def test_the_config_check_refuses_a_scheduler_for_a_local_folder(
    family_folders: dict[str, Path],
) -> None:
    config = {
        "prompts": {"a": {"text": "a circle"}},
        "model": {"source": str(family_folders["sd3"])},
        "generation": {"scheduler": "ddim"},
    }
    with pytest.raises(ConfigError, match=r"^config key generation\.scheduler: 'ddim'") as error:
        check_config(config, SCHEMA_PATH)
    assert "FlowMatchEulerDiscreteScheduler" in str(error.value)
    config["generation"] = {"scheduler": "flow_euler"}
    check_config(config, SCHEMA_PATH)
    config["model"]["source"] = str(family_folders["flux-dev"])
    config["generation"] = {"scheduler": "flow_heun"}
    with pytest.raises(ConfigError, match=r"generation\.scheduler: 'flow_heun'.*custom sigmas"):
        check_config(config, SCHEMA_PATH)


def test_a_sheet_path_must_end_in_tsv_or_csv_in_the_schema() -> None:
    from sdcnn.config.check import ConfigError

    with pytest.raises(ConfigError, match=r"^config key prompts: 'prompts\.xlsx' is not allowed"):
        check_config({"prompts": "prompts.xlsx"}, SCHEMA_PATH)
    assert check_config({"prompts": "my prompts.TSV"}, SCHEMA_PATH)["prompts"] == "my prompts.TSV"


# ---- generation.scheduler against a local model's kind, from its configs alone


def model_folder_with(
    folder: Path, pipeline: str, scheduler: str, denoiser: str = "transformer", **config: Any
) -> Path:
    """A diffusers folder's configs, no weights: what the config check reads."""
    (folder / "scheduler").mkdir(parents=True)
    index = {"_class_name": pipeline, denoiser: ["diffusers", "Model"]}
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    scheduler_config = {"_class_name": scheduler, **config}
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(scheduler_config), encoding="utf-8"
    )
    return folder


FLOW = "FlowMatchEulerDiscreteScheduler"


def scheduler_refusal(source: str | Path, scheduler: str) -> str:
    with pytest.raises(ConfigError) as error:
        check_scheduler_fits(str(source), scheduler)
    assert error.value.key == "generation.scheduler"
    return str(error.value)


def test_a_flow_model_refuses_a_noise_scheduler_naming_what_fits(tmp_path: Path) -> None:
    sd3 = model_folder_with(tmp_path / "sd3", "StableDiffusion3Pipeline", FLOW)
    assert scheduler_refusal(sd3, "ddim") == (
        f"config key generation.scheduler: 'ddim' does not fit this model, whose scheduler is "
        f"{FLOW}: 'ddim' is an ε/v-prediction scheduler; the model is flow-matching. Choices "
        f"that fit: default, flow_euler, flow_heun (model.source '{sd3}')"
    )
    for fitting in ("default", "flow_euler", "flow_heun"):
        check_scheduler_fits(str(sd3), fitting)


def test_flux_names_only_the_flow_schedulers_that_take_its_sigmas(tmp_path: Path) -> None:
    flux = model_folder_with(tmp_path / "flux", "FluxPipeline", FLOW)
    assert scheduler_refusal(flux, "ddim").endswith(
        f"Choices that fit: default, flow_euler (model.source '{flux}')"
    )
    refusal = scheduler_refusal(flux, "flow_heun")
    assert "FlowMatchHeunDiscreteScheduler takes no custom sigmas" in refusal
    assert refusal.endswith(f"Choices that fit: default, flow_euler (model.source '{flux}')")
    check_scheduler_fits(str(flux), "flow_euler")


def test_a_noise_model_refuses_a_flow_scheduler(tmp_path: Path) -> None:
    refusal = scheduler_refusal("demo", "flow_euler")
    assert "'flow_euler' is a flow-matching scheduler; the model predicts noise" in refusal
    assert "whose scheduler is DDIMScheduler" in refusal and "(model.source 'demo')" in refusal
    assert "Choices that fit: default, ddim, pndm, euler," in refusal
    check_scheduler_fits("demo", "ddim")
    sd1 = model_folder_with(tmp_path / "sd1", "StableDiffusionPipeline", "PNDMScheduler", "unet")
    assert "whose scheduler is PNDMScheduler" in scheduler_refusal(sd1, "flow_heun")


def test_flow_sigmas_let_a_flow_model_take_dpm_and_unipc(tmp_path: Path) -> None:
    sana = model_folder_with(
        tmp_path / "sana", "SanaPipeline", "DPMSolverMultistepScheduler", use_flow_sigmas=True
    )
    for fitting in ("dpm_multistep", "unipc", "flow_euler"):
        check_scheduler_fits(str(sana), fitting)
    assert "'ddim' is an ε/v-prediction scheduler" in scheduler_refusal(sana, "ddim")


def test_the_scheduler_is_not_checked_where_nothing_can_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flux = model_folder_with(tmp_path / "flux", "FluxPipeline", FLOW)
    check_scheduler_fits(str(flux), "default")  # the model's own always fits
    check_scheduler_fits("black-forest-labs/FLUX.1-schnell", "ddim")  # a Hub id: in the job
    check_scheduler_fits(str(tmp_path / "missing"), "ddim")  # the model check says so
    no_scheduler = tmp_path / "no-scheduler"
    no_scheduler.mkdir()
    index = {"_class_name": "FluxPipeline", "transformer": ["diffusers", "Model"]}
    (no_scheduler / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    check_scheduler_fits(str(no_scheduler), "ddim")


def test_a_home_relative_model_folder_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_folder_with(tmp_path / "models" / "sd3", "StableDiffusion3Pipeline", FLOW)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "(model.source '~/models/sd3')" in scheduler_refusal("~/models/sd3", "ddim")


def test_which_pipelines_always_pass_custom_sigmas() -> None:
    assert pipeline_passes_sigmas("FluxPipeline")
    assert not pipeline_passes_sigmas("StableDiffusion3Pipeline")
    assert not pipeline_passes_sigmas("NoSuchPipeline")


def test_a_refused_real_set_names_the_key_and_the_file(tmp_path: Path) -> None:
    from sdcnn.config.check import checked_real_images

    (tmp_path / "set" / "cat").mkdir(parents=True)
    (tmp_path / "set" / "cat" / "a.png").write_bytes(b"")
    with pytest.raises(ConfigError) as error:
        checked_real_images(tmp_path / "set", ["cat"], "header")
    assert error.value.key == "evaluation.real"
    assert str(error.value).startswith("config key evaluation.real: ")
    assert "cat/a.png: a zero-byte file" in str(error.value)
    # listing only ("none", a job's own parse) reads no file
    assert [image.relative for image in checked_real_images(tmp_path / "set", ["cat"], "none")] == [
        "cat/a.png"
    ]
