"""The weights file (sdcnn/classify/weights.py): Flux's Glorot-uniform init, safetensors round
trip, and bad files named with a clear error."""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from sdcnn.classify.weights import (
    CNNWeights,
    IncompatibleWeights,
    check_compatible,
    dense_inputs,
    init_weights,
    load_weights,
    read_header,
    save_weights,
)
from sdcnn.core.errors import StepError
from tests.support.pickles import Touch


def test_shapes_follow_image_size_and_labels() -> None:
    weights = init_weights(seed=1, in_channels=1, image_size=224, n_labels=10)
    shapes = {name: array.shape for name, array in weights.tensors.items()}
    assert shapes == {
        "conv1.weight": (16, 1, 3, 3),
        "conv1.bias": (16,),
        "conv2.weight": (32, 16, 3, 3),
        "conv2.bias": (32,),
        "dense.weight": (10, 32 * 56 * 56),
        "dense.bias": (10,),
    }
    assert dense_inputs(225) == 32 * 56 * 56  # floor pooling, as Flux and torch


def test_glorot_uniform_bounds_and_zero_bias() -> None:
    weights = init_weights(seed=1, in_channels=1, image_size=32, n_labels=5)
    for name, fan_in, fan_out in [
        ("conv1.weight", 1 * 9, 16 * 9),
        ("conv2.weight", 16 * 9, 32 * 9),
        ("dense.weight", 32 * 8 * 8, 5),
    ]:
        limit = math.sqrt(6 / (fan_in + fan_out))
        values = weights.tensors[name]
        assert values.dtype == np.float32
        assert np.abs(values).max() <= limit
        assert np.abs(values).max() > 0.9 * limit  # spread over the whole range
    for name in ("conv1.bias", "conv2.bias", "dense.bias"):
        assert not weights.tensors[name].any()


def test_seed_decides_weights() -> None:
    first, again, other = (init_weights(s, 1, 16, 3) for s in (1, 1, 2))
    assert all(np.array_equal(first.tensors[k], again.tensors[k]) for k in first.tensors)
    assert not np.array_equal(first.tensors["dense.weight"], other.tensors["dense.weight"])


def test_round_trip_keeps_tensors_and_labels(tmp_path: Path) -> None:
    weights = CNNWeights(init_weights(4, 3, 16, 2).tensors, labels=["cat", "dog"])
    save_weights(tmp_path / "w.safetensors", weights)
    loaded = load_weights(tmp_path / "w.safetensors")
    assert loaded.labels == ["cat", "dog"]
    assert loaded.in_channels == 3 and loaded.n_labels == 2
    for name, array in weights.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)


def test_plain_safetensors_without_metadata_is_accepted(tmp_path: Path) -> None:
    save_file(init_weights(4, 1, 16, 2).tensors, str(tmp_path / "plain.safetensors"))
    assert load_weights(tmp_path / "plain.safetensors").labels is None


def test_wrong_shape_names_file_and_tensor(tmp_path: Path) -> None:
    tensors = init_weights(4, 1, 16, 2).tensors
    tensors["conv2.weight"] = np.zeros((32, 8, 3, 3), np.float32)
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    with pytest.raises(StepError, match=r"bad\.safetensors.*conv2\.weight"):
        load_weights(tmp_path / "bad.safetensors")


def test_pickle_file_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(pickle.dumps({"conv1.weight": [1.0]}))
    with pytest.raises(StepError, match="not a safetensors file"):
        load_weights(path)


def test_labels_must_match_the_file(tmp_path: Path) -> None:
    weights = CNNWeights(init_weights(4, 1, 16, 2).tensors, labels=["cat", "dog"])
    with pytest.raises(StepError, match="2 outputs"):
        check_compatible(weights, "w", ["a", "b", "c"], (1, 16, 16))
    with pytest.raises(StepError, match="do not match"):
        check_compatible(weights, "w", ["dog", "cat"], (1, 16, 16))
    with pytest.raises(StepError, match="preprocess.size"):
        check_compatible(weights, "w", ["cat", "dog"], (1, 32, 32))
    check_compatible(weights, "w", ["cat", "dog"], (1, 16, 16))


def test_metadata_format_is_checked(tmp_path: Path) -> None:
    metadata = {"sdcnn": json.dumps({"format": "something-else"})}
    save_file(init_weights(4, 1, 16, 2).tensors, str(tmp_path / "w.safetensors"), metadata=metadata)
    with pytest.raises(StepError, match="format"):
        load_weights(tmp_path / "w.safetensors")


def test_a_mismatch_carries_the_config_key_to_change() -> None:
    weights = CNNWeights(init_weights(4, 1, 16, 2).tensors, labels=["cat", "dog"])
    for shape, key in (((3, 16, 16), "preprocess.grayscale"), ((1, 32, 32), "preprocess.size")):
        with pytest.raises(IncompatibleWeights) as caught:
            check_compatible(weights, "w", ["cat", "dog"], shape)
        assert caught.value.key == key
        assert str(caught.value) == f"{key}: {caught.value.problem}"
        copied = pickle.loads(pickle.dumps(caught.value))
        assert (str(copied), copied.key) == (str(caught.value), key)


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def small_weights(labels: list[str] | None = None) -> CNNWeights:
    return CNNWeights(init_weights(4, 1, 16, 2).tensors, labels=labels)


def metadata_of(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return handle.metadata()


def test_weights_metadata_is_one_sorted_json_key(tmp_path: Path) -> None:
    save_weights(tmp_path / "w.safetensors", small_weights(["cat", "dog"]))
    metadata = metadata_of(tmp_path / "w.safetensors")
    assert metadata == {
        "sdcnn": '{"format": "sdcnn-cnn", "format_version": 1, "labels": ["cat", "dog"]}'
    }, metadata


def save_with_metadata(path: Path, description: str) -> Path:
    save_file(small_weights().tensors, str(path), metadata={"sdcnn": description})
    return path


@pytest.mark.parametrize("reader", [load_weights, read_header])
@pytest.mark.parametrize(
    "description, message",
    [
        ("{not json", r"weights file .*w\.safetensors: metadata is not JSON: "),
        ('{"format": "other"}', r"weights file .*w\.safetensors: format 'other', not 'sdcnn-cnn'"),
        (
            '{"format": "sdcnn-cnn", "labels": "cat"}',
            r"weights file .*w\.safetensors: metadata labels must be a list of strings",
        ),
        (
            '{"format": "sdcnn-cnn", "labels": [1, 2]}',
            r"weights file .*w\.safetensors: metadata labels must be a list of strings",
        ),
        (
            '{"format": "sdcnn-cnn", "labels": ["a", "b", "c"]}',
            r"weights file .*w\.safetensors: its metadata names 3 labels but dense\.weight has 2 "
            r"outputs",
        ),
    ],
)
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
    tensors = small_weights().tensors
    tensors[name] = np.zeros((2,), np.float32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError, match=rf"{re.escape(name)} has shape \(2,\), expected"):
        reader(tmp_path / "w.safetensors")


@pytest.mark.parametrize("reader", [load_weights, read_header])
def test_a_dense_layer_of_no_square_image_is_refused(tmp_path: Path, reader: Any) -> None:
    tensors = small_weights().tensors
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
    with pytest.raises(
        StepError,
        match=r"unpickling can run code: save the tensors with "
        r"safetensors instead\): ",
    ):
        load_weights(path)


@pytest.mark.parametrize("reader", [load_weights, read_header])
@pytest.mark.parametrize(
    "name, shape, expected",
    [
        ("conv1.weight", (16, 3, 3), "(16, -1, 3, 3)"),  # in channels: not in a 3-d tensor
        ("dense.weight", (2,), "(-1, -1)"),
    ],
)
def test_a_tensor_of_the_wrong_rank_gets_no_made_up_sizes(
    tmp_path: Path, reader: Any, name: str, shape: tuple[int, ...], expected: str
) -> None:
    """The sizes a tensor of the wrong rank cannot give are shown as -1 (unknown), not as a
    number the user could take for the one wanted (1 input channel, 1 label)."""
    tensors = small_weights().tensors
    tensors[name] = np.zeros(shape, np.float32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError) as caught:
        reader(tmp_path / "w.safetensors")
    assert str(caught.value).endswith(f"{name} has shape {shape}, expected {expected}")


# ---- weights


def test_weights_with_nan_name_file_and_tensor(tmp_path: Path) -> None:
    tensors = init_weights(1, 1, 16, 2).tensors
    tensors["dense.weight"][0, 0] = np.nan
    save_file(tensors, str(tmp_path / "w.safetensors"))
    read_header(tmp_path / "w.safetensors")  # the header is fine: only the values are not
    with pytest.raises(StepError, match=r"w\.safetensors: dense\.weight has NaN or infinite"):
        load_weights(tmp_path / "w.safetensors")


@pytest.mark.parametrize("reader", [load_weights, read_header])
def test_weights_of_wrong_dtype_or_names(tmp_path: Path, reader) -> None:  # noqa: ANN001
    tensors = init_weights(1, 1, 16, 2).tensors
    tensors["conv1.weight"] = tensors["conv1.weight"].astype(np.float64)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError, match=r"w\.safetensors: conv1\.weight is (F64|float64)"):
        reader(tmp_path / "w.safetensors")
    tensors["extra"] = np.zeros(1, np.float32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    with pytest.raises(StepError, match=r"w\.safetensors: expected tensors .* found .*'extra'"):
        reader(tmp_path / "w.safetensors")


@pytest.mark.parametrize("reader", [load_weights, read_header])
def test_truncated_weights_file_is_named(tmp_path: Path, reader) -> None:  # noqa: ANN001
    save_file(init_weights(1, 1, 16, 2).tensors, str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(StepError, match=r"weights file .*w\.safetensors is not a safetensors file"):
        reader(tmp_path / "w.safetensors")


def test_pickled_weights_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Touch(str(marker)))
    (tmp_path / "w.pt").write_bytes(payload)
    for reader in (load_weights, read_header):
        with pytest.raises(StepError, match=r"w\.pt is not a safetensors file \(it looks like"):
            reader(tmp_path / "w.pt")
    assert not marker.exists()
