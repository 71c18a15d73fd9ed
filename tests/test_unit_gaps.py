"""Unit tests for what mutation testing found unchecked (docs/mutation-testing.md).

Each test pins a behaviour that a surviving mutant changed: the JSON style of every
output, the image store's keys and warnings, the fingerprint's hash cache, the weights'
metadata and error messages, and the config messages for each kind of schema problem.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.numpy import save_file

from sdcnn.classify.weights import CNNWeights, init_weights, load_weights, read_header, save_weights
from sdcnn.config.check import (
    ConfigError,
    _unique,
    check_config_file,
    check_prompt_ids,
    refuse_duplicate_keys,
    validate_config,
)
from sdcnn.core.fileio import dumps_json, remove_stale_temporaries
from sdcnn.core.naming import image_id, image_ids
from sdcnn.core.seeds import image_seed
from sdcnn.generate import image_store
from sdcnn.generate.image_store import ImageStore, folder_fingerprint, key_digest, store_from_config
from sdcnn.preprocess.image_to_tensor import preprocess_prompt
from sdcnn.workflow.step import StepError

# ---- fileio


def test_every_json_output_has_one_style() -> None:
    text = dumps_json({"b": [1, 2.5], "é": "ü ✓", "n": None})
    assert text == '{\n  "b": [\n    1,\n    2.5\n  ],\n  "é": "ü ✓",\n  "n": null\n}\n', text


def test_json_outputs_refuse_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps_json({"p": float("nan")})


def test_a_stale_temporary_gone_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another cleaner may remove a stale file between the listing and the unlink."""
    final = tmp_path / "images"
    vanished = tmp_path / ".images.abc.tmp"  # listed, but no longer there
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    remove_stale_temporaries(final)


# ---- seeds and names


def test_a_negative_image_index_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match=r"image index must be >= 0, got -1"):
        image_seed(1, "city", -1)


def test_image_ids_are_the_prompt_and_a_three_digit_index() -> None:
    assert image_id("city", 7) == "city_007"
    assert image_id("city", 1234) == "city_1234"
    assert image_ids("harbor", 3) == ["harbor_000", "harbor_001", "harbor_002"]
    assert image_ids("x", 0) == []


# ---- preprocessing: colour previews, threads


def write_pngs(folder: Path, count: int) -> list[str]:
    import cv2

    folder.mkdir(parents=True)
    stems = [f"p_{index:03d}" for index in range(count)]
    rng = np.random.default_rng(9)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}.png"), rng.integers(0, 256, (16, 16, 3), np.uint8))
    return stems


def test_a_colour_preview_shows_the_images_own_colours(tmp_path: Path) -> None:
    import cv2

    stems = write_pngs(tmp_path / "images", 1)
    preprocess_prompt(tmp_path / "images", tmp_path / "t", tmp_path / "v", stems, size=16,
                      grayscale=False, interpolation="nearest")  # fmt: skip
    original = cv2.imread(str(tmp_path / "images" / "p_000.png"), cv2.IMREAD_COLOR)
    preview = cv2.imread(str(tmp_path / "v" / "p_000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(preview, original, err_msg="preview channels are swapped")


def test_threads_change_no_output(tmp_path: Path) -> None:
    stems = write_pngs(tmp_path / "images", 5)
    outputs = {}
    for threads in (1, 2, 3):
        out = tmp_path / f"threads{threads}"
        preprocess_prompt(tmp_path / "images", out / "t", out / "v", stems, size=8,
                          grayscale=True, interpolation="area", threads=threads)  # fmt: skip
        outputs[threads] = {p.relative_to(out).as_posix(): p.read_bytes()
                            for p in sorted(out.rglob("*")) if p.is_file()}  # fmt: skip
    assert len(outputs[1]) == 10, sorted(outputs[1])
    assert outputs[2] == outputs[1] and outputs[3] == outputs[1], "threads changed the outputs"


# ---- image store


def test_the_store_follows_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_from_config({}) == ImageStore(Path(".image-store"))
    assert store_from_config({"enabled": True, "path": "~/store"}) == ImageStore(tmp_path / "store")
    assert store_from_config({"enabled": False, "path": "x"}) is None


KEY = {"model": "sha256:abc", "prompt": "a city", "seed": 7}


def noise_image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def test_entries_of_different_keys_live_side_by_side(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    other = {**KEY, "seed": 8}
    assert key_digest(KEY) != key_digest(other)
    assert re.fullmatch(r"[0-9a-f]{64}", key_digest(KEY)), key_digest(KEY)
    store.put(KEY, noise_image(1))
    store.put(other, noise_image(2))
    for key, seed in ((KEY, 1), (other, 2)):
        got = store.get(key)
        assert got is not None, f"the entry of {key} is gone after another key was stored"
        np.testing.assert_array_equal(np.asarray(got), np.asarray(noise_image(seed)))


def test_a_damaged_entry_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    png = tmp_path / "images" / digest[:2] / f"{digest}.png"
    png.write_bytes(png.read_bytes()[:-4])
    caplog.set_level(logging.WARNING, logger="sdcnn.generate.image_store")
    assert store.get(KEY) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"image store entry {digest} is damaged: discarding it"
    ]


def test_discarding_a_half_entry_is_no_error(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    (tmp_path / "images" / digest[:2] / f"{digest}.json").unlink()  # killed between writes
    store.discard(digest)
    assert list((tmp_path / "images" / digest[:2]).iterdir()) == []


def model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "weights.bin").write_bytes(b"\x00" * 100)
    return folder


def test_fingerprint_without_a_cache(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    assert folder_fingerprint(folder) == folder_fingerprint(folder, tmp_path / "cache.json")


def test_fingerprint_reads_each_file_once_and_rewrites_the_cache_only_on_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, cache = model_folder(tmp_path), tmp_path / "cache.json"
    hashed: list[Path] = []
    written: list[Path] = []
    real_hash, real_write = image_store.sha256_file, image_store.write_json_atomic
    monkeypatch.setattr(image_store, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(
        image_store, "write_json_atomic", lambda p, d: written.append(p) or real_write(p, d)
    )
    first = folder_fingerprint(folder, cache)
    assert len(hashed) == 2 and written == [cache], (hashed, written)
    assert folder_fingerprint(folder, cache) == first
    assert len(hashed) == 2, f"unchanged files were hashed again: {hashed[2:]}"
    assert written == [cache], "the cache was rewritten though nothing changed"


def test_a_damaged_hash_cache_is_ignored(tmp_path: Path) -> None:
    folder, cache = model_folder(tmp_path), tmp_path / "cache.json"
    cache.write_text("{not json")
    assert folder_fingerprint(folder, cache) == folder_fingerprint(folder)
    assert json.loads(cache.read_text()), "the damaged cache was not replaced"


# ---- weights


def weights(labels: list[str] | None = None) -> CNNWeights:
    return CNNWeights(init_weights(4, 1, 16, 2).tensors, labels=labels)


def metadata_of(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return handle.metadata()


def test_weights_metadata_is_one_sorted_json_key(tmp_path: Path) -> None:
    save_weights(tmp_path / "w.safetensors", weights(["cat", "dog"]))
    metadata = metadata_of(tmp_path / "w.safetensors")
    assert metadata == {
        "sdcnn": '{"format": "sdcnn-cnn", "format_version": 1, "labels": ["cat", "dog"]}'
    }, metadata


def save_with_metadata(path: Path, description: str) -> Path:
    save_file(weights().tensors, str(path), metadata={"sdcnn": description})
    return path


@pytest.mark.parametrize("reader", [load_weights, read_header])
@pytest.mark.parametrize(
    "description, message",
    [
        ("{not json", r"weights file .*w\.safetensors: metadata is not JSON: "),
        ('{"format": "other"}', r"weights file .*w\.safetensors: format 'other', not 'sdcnn-cnn'"),
        ('{"format": "sdcnn-cnn", "labels": "cat"}',
         r"weights file .*w\.safetensors: metadata labels must be a list of strings"),
        ('{"format": "sdcnn-cnn", "labels": [1, 2]}',
         r"weights file .*w\.safetensors: metadata labels must be a list of strings"),
        ('{"format": "sdcnn-cnn", "labels": ["a", "b", "c"]}',
         r"weights file .*w\.safetensors: its metadata names 3 labels but dense\.weight has 2 "
         r"outputs"),
    ],
)  # fmt: skip
def test_bad_weights_metadata_is_named_and_explained(
    tmp_path: Path, reader: Any, description: str, message: str
) -> None:
    path = save_with_metadata(tmp_path / "w.safetensors", description)
    with pytest.raises(StepError, match=message):
        reader(path)


@pytest.mark.parametrize("reader", [load_weights, read_header])
@pytest.mark.parametrize("name", ["conv1.weight", "dense.weight"])
def test_a_tensor_with_too_few_dimensions_is_refused(
    tmp_path: Path, reader: Any, name: str
) -> None:
    tensors = weights().tensors
    tensors[name] = np.zeros((2,), np.float32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError, match=rf"{re.escape(name)} has shape \(2,\), expected"):
        reader(tmp_path / "w.safetensors")


@pytest.mark.parametrize("reader", [load_weights, read_header])
def test_a_dense_layer_of_no_square_image_is_refused(tmp_path: Path, reader: Any) -> None:
    tensors = weights().tensors
    tensors["dense.weight"] = np.zeros((2, 32 * 8), np.float32)  # 8 is no k * k
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError, match=r"dense\.weight has 256 inputs, not 32\*k\*k"):
        reader(tmp_path / "w.safetensors")


@pytest.mark.parametrize("reader", [load_weights, read_header])
def test_a_file_that_is_not_safetensors_gets_the_readers_reason(
    tmp_path: Path, reader: Any
) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage header}")
    with pytest.raises(StepError) as caught:
        reader(path)
    text = str(caught.value)
    assert re.fullmatch(rf"weights file {re.escape(str(path))} is not a safetensors file: .+", text)
    assert "pickle" not in text and not text.endswith(": None"), text


def test_a_pickle_gets_the_hint_why_it_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(StepError, match=r"unpickling can run code: save the tensors with "
                       r"safetensors instead\): "):  # fmt: skip
        load_weights(path)


# ---- config messages, one per kind of schema problem

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
    ({"t": datetime.date(2020, 1, 2)},
     "config key t: datetime.date(2020, 1, 2) is date, expected a string or null"),
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
]  # fmt: skip


@pytest.mark.parametrize("config, message", MESSAGES, ids=[m for _, m in MESSAGES])
def test_each_schema_problem_has_its_message(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    assert str(caught.value) == message


def test_problems_at_the_top_level_say_so() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config([], SCHEMA)  # type: ignore[arg-type]
    assert str(caught.value) == "config key (top level): [] is a list, expected a mapping"
    names = {"type": "object", "propertyNames": {"pattern": "^[a-z]+$",
                                                 "description": "Lower-case names."}}  # fmt: skip
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
    with pytest.raises(yaml.constructor.ConstructorError, match=r"key c\.y is given twice "
                       r"\(lines 4 and 5\)"):  # fmt: skip
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
    with pytest.raises(ConfigError, match=rf"^config file {re.escape(str(path))}: key 'a' is "
                       "given twice; JSON would keep only the last one"):  # fmt: skip
        check_config_file(path)
    path.write_text('{"a": {"b": 1}, "c": [1, 2]}', encoding="utf-8")
    check_config_file(path)
