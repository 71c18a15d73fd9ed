"""Bad data files: a clear error that names the file, and no partial output left behind."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from sdcnn.classify.weights import init_weights, load_weights, read_header
from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_directory, atomic_path
from sdcnn.preprocess.image_to_tensor import read_image
from sdcnn.preprocess.tensors import load_batch, load_tensor


def png_bytes(side: int = 16) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- images


@pytest.mark.parametrize(
    "cut", [lambda data: data[: len(data) // 2], lambda data: data[:-12], lambda data: data[:33]]
)
def test_truncated_png_names_the_file(tmp_path: Path, cut) -> None:  # noqa: ANN001
    path = tmp_path / "p_000.png"
    path.write_bytes(cut(png_bytes()))
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(path)


def test_png_with_a_damaged_byte_names_the_file(tmp_path: Path) -> None:
    data = bytearray(png_bytes(64))
    data[len(data) // 2] ^= 0xFF  # inside the compressed pixels: the checksum no longer fits
    (tmp_path / "p_000.png").write_bytes(bytes(data))
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(tmp_path / "p_000.png")


def test_text_file_named_png_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "p_000.png").write_text("<html>404 not found</html>")
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(tmp_path / "p_000.png")


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(StepError, match=r"p_009\.png: not a readable image"):
        read_image(tmp_path / "p_009.png")


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


# ---- a pickle-based .npy


class Touch:
    """Unpickling this creates ``path``: the side effect a malicious file would have."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (Path(self.path),))


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


# ---- atomic outputs


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_directory_keeps_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "images"
    with atomic_directory(target) as temporary:
        (temporary / "a.png").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_directory(target) as temporary:
        (temporary / "a.png").write_bytes(b"new, half")
        raise RuntimeError("failed mid-way")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images"]
    assert (target / "a.png").read_bytes() == b"old"
