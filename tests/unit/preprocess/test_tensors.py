"""Tensor files (sdcnn/preprocess/tensors.py): bad files get a clear error that names them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from sdcnn.core.errors import StepError
from sdcnn.preprocess.tensors import load_batch, load_tensor
from tests.support.pickles import Touch

# ---- tensors


def save_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=False)
    return path


GOOD = np.full((1, 8, 8), 0.5, np.float32)
DIAGONAL = np.eye(8, dtype=bool)


@pytest.mark.parametrize(
    "array, message",
    [
        (GOOD.astype(np.float64), r"dtype float64, expected float32"),
        (GOOD.astype(np.float16), r"dtype float16, expected float32"),
        ((GOOD * 255).astype(np.uint8), r"dtype uint8, expected float32"),
        (GOOD[0], r"shape \(8, 8\), expected \(channels, size, size\)"),
        (np.zeros((1, 8, 4), np.float32), r"shape \(1, 8, 4\), expected"),
        (np.zeros((1, 1, 8, 8), np.float32), r"shape \(1, 1, 8, 8\), expected"),
        (np.where(DIAGONAL, np.nan, GOOD).astype(np.float32), r"contains NaN or infinite values"),
        (np.where(DIAGONAL, np.inf, GOOD).astype(np.float32), r"contains NaN or infinite values"),
        (GOOD * 255, r"values outside \[0, 1\] \(127\.5\.\.127\.5\)"),
        (GOOD - 1, r"values outside \[0, 1\]"),
    ],
)
def test_bad_tensor_names_the_file(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = save_npy(tmp_path / "p_000.npy", array)
    with pytest.raises(StepError, match=rf"p_000\.npy: {message}"):
        load_tensor(path)


def test_good_tensor_loads(tmp_path: Path) -> None:
    np.testing.assert_array_equal(load_tensor(save_npy(tmp_path / "p.npy", GOOD)), GOOD)


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY garbage", b"not numpy at all"])
def test_unreadable_npy_names_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "p_000.npy").write_bytes(content)
    with pytest.raises(StepError, match=r"p_000\.npy: not a readable \.npy file"):
        load_tensor(tmp_path / "p_000.npy")


def test_truncated_npy_names_the_file(tmp_path: Path) -> None:
    data = save_npy(tmp_path / "p_000.npy", GOOD).read_bytes()
    (tmp_path / "p_000.npy").write_bytes(data[:-10])
    with pytest.raises(StepError, match=r"p_000\.npy: not a readable \.npy file"):
        load_tensor(tmp_path / "p_000.npy")


def test_batch_of_mixed_shapes_is_refused(tmp_path: Path) -> None:
    first = save_npy(tmp_path / "a.npy", GOOD)
    second = save_npy(tmp_path / "b.npy", np.full((1, 4, 4), 0.5, np.float32))
    with pytest.raises(StepError, match="differ in shape"):
        load_batch([first, second])


# ---- a pickle-based .npy


def test_pickle_npy_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    array = np.empty(1, dtype=object)
    array[0] = Touch(str(marker))
    np.save(tmp_path / "p_000.npy", array, allow_pickle=True)
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(Touch(str(marker))))
    for name in ("p_000.npy", "raw.npy"):
        with pytest.raises(StepError, match=rf"{name}: not a readable \.npy file.*pickle"):
            load_tensor(tmp_path / name)
    assert not marker.exists()
    # the check is real: loading with pickles allowed would have run the payload
    np.load(tmp_path / "p_000.npy", allow_pickle=True)
    assert marker.exists()
