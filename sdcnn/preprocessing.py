"""Image -> tensor with OpenCV.

Tensor layout (the contract with both prediction backends): a C-order float32
``.npy`` of shape ``(C, size, size)`` (channels, height, width), values in
[0, 1] (8-bit value / 255).  ``C`` is 1 for grayscale (ITU-R BT.601 luma, as
``cv2.COLOR_BGR2GRAY``) and 3 for colour, in RGB order.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from sdcnn.fileio import atomic_directory
from sdcnn.step import StepError

INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "nearest": cv2.INTER_NEAREST,
}


def interpolation_flag(name: str, source_hw: tuple[int, int], size: int) -> int:
    """OpenCV flag for ``name``; ``auto`` is INTER_AREA when shrinking, else INTER_CUBIC."""
    if name == "auto":
        return cv2.INTER_AREA if min(source_hw) > size else cv2.INTER_CUBIC
    return INTERPOLATIONS[name]


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as 8-bit BGR; a clear error for a missing, truncated or non-image file."""
    data = np.fromfile(path, dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise StepError(f"{path}: not a readable image (missing, empty, truncated or not an image)")
    return image


def to_tensor(image_bgr: np.ndarray, size: int, grayscale: bool, interpolation: str) -> np.ndarray:
    """An 8-bit BGR image -> float32 ``(C, size, size)`` in [0, 1]."""
    flag = interpolation_flag(interpolation, image_bgr.shape[:2], size)
    code = cv2.COLOR_BGR2GRAY if grayscale else cv2.COLOR_BGR2RGB
    resized = cv2.resize(cv2.cvtColor(image_bgr, code), (size, size), interpolation=flag)
    hwc = resized[:, :, np.newaxis] if grayscale else resized
    chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    return chw.astype(np.float32) / np.float32(255)


def npy_bytes(tensor: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor, allow_pickle=False)
    return buffer.getvalue()


def preview_png_bytes(tensor: np.ndarray) -> bytes:
    """The tensor as an 8-bit PNG, so people can see what the CNN sees."""
    hwc = np.rint(tensor * 255).astype(np.uint8).transpose(1, 2, 0)
    image = hwc[:, :, 0] if hwc.shape[2] == 1 else cv2.cvtColor(hwc, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise StepError("could not encode the preview PNG")
    return encoded.tobytes()


def preprocess_prompt(
    image_dir: str | Path,
    tensor_dir: str | Path,
    preview_dir: str | Path,
    image_ids: list[str],
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
) -> None:
    """A prompt's PNGs -> one ``.npy`` tensor and one preview PNG per image.

    Both output folders appear only once every image is done.
    """
    with atomic_directory(tensor_dir) as tensors, atomic_directory(preview_dir) as previews:
        for stem in image_ids:
            tensor = to_tensor(
                read_image(Path(image_dir) / f"{stem}.png"), size, grayscale, interpolation
            )
            (tensors / f"{stem}.npy").write_bytes(npy_bytes(tensor))
            (previews / f"{stem}.png").write_bytes(preview_png_bytes(tensor))
