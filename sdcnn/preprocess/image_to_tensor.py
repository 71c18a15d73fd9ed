"""Image -> tensor with OpenCV.

Tensor layout (the contract with both prediction backends): a C-order float32
``.npy`` of shape ``(C, size, size)`` (channels, height, width), values in
[0, 1] (8-bit value / 255).  ``C`` is 1 for grayscale (ITU-R BT.601 luma, as
``cv2.COLOR_BGR2GRAY``) and 3 for colour, in RGB order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_directory
from sdcnn.core.shards import ShardLayout

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
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if Path(path).is_file() else None
    if image is None:
        raise StepError(f"{path}: not a readable image (missing, empty, truncated or not an image)")
    return image


def resize_8bit(
    image_bgr: np.ndarray, size: int, grayscale: bool, interpolation: str
) -> np.ndarray:
    """An 8-bit BGR image -> 8-bit ``size`` x ``size``, gray (H, W) or RGB (H, W, 3)."""
    flag = interpolation_flag(interpolation, image_bgr.shape[:2], size)
    code = cv2.COLOR_BGR2GRAY if grayscale else cv2.COLOR_BGR2RGB
    return cv2.resize(cv2.cvtColor(image_bgr, code), (size, size), interpolation=flag)


def tensor_from_8bit(resized: np.ndarray) -> np.ndarray:
    """8-bit (H, W) or (H, W, C) -> float32 ``(C, H, W)``, value / 255."""
    hwc = resized[:, :, np.newaxis] if resized.ndim == 2 else resized
    return np.ascontiguousarray(hwc.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)


def to_tensor(image_bgr: np.ndarray, size: int, grayscale: bool, interpolation: str) -> np.ndarray:
    """An 8-bit BGR image -> float32 ``(C, size, size)`` in [0, 1]."""
    return tensor_from_8bit(resize_8bit(image_bgr, size, grayscale, interpolation))


def preview_png_bytes(resized: np.ndarray) -> bytes:
    """The 8-bit image the tensor holds, as a PNG, so people can see what the CNN sees."""
    image = resized if resized.ndim == 2 else cv2.cvtColor(resized, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise StepError("could not encode the preview PNG")
    return encoded.tobytes()


def preprocess_image(
    image_path: Path,
    tensor_path: Path,
    preview_path: Path,
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
    read: Callable[[Path], np.ndarray] = read_image,
) -> None:
    """One image file -> its ``.npy`` tensor and its preview PNG; ``read`` decodes it to 8-bit
    BGR (a generated PNG: OpenCV's ``read_image``; a real image of any kind:
    ``sdcnn.evaluate.real_images.load_real_image``)."""
    resized = resize_8bit(read(image_path), size, grayscale, interpolation)
    np.save(tensor_path, tensor_from_8bit(resized), allow_pickle=False)
    preview_path.write_bytes(preview_png_bytes(resized))


def preprocess_shard(
    image_dir: str | Path,
    tensor_dir: str | Path,
    preview_dir: str | Path,
    stems_by_prompt: Mapping[str, Sequence[str]],
    layout: ShardLayout,
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
    threads: int = 1,
) -> int:
    """A shard's PNGs -> one ``.npy`` tensor and one preview PNG per image.

    ``stems_by_prompt`` maps each prompt of the shard to its image ids; ``layout`` says
    where each prompt's files are inside the shard's folders.  With ``threads`` > 1
    images are decoded in parallel (OpenCV releases the GIL); every image is
    independent, so the outputs are the same for any thread count.  Both output
    folders appear only once every image is done.  Returns the number of images.
    """
    cv2.setNumThreads(1)  # parallel over images, not inside each small resize
    settings = {"size": size, "grayscale": grayscale, "interpolation": interpolation}
    with atomic_directory(tensor_dir) as tensors, atomic_directory(preview_dir) as previews:
        work = []
        for prompt_id, stems in stems_by_prompt.items():
            source = layout.folder(image_dir, prompt_id)
            to_tensors = layout.folder(tensors, prompt_id)
            to_previews = layout.folder(previews, prompt_id)
            to_tensors.mkdir(exist_ok=True)
            to_previews.mkdir(exist_ok=True)
            work += [
                (source / f"{stem}.png", to_tensors / f"{stem}.npy", to_previews / f"{stem}.png")
                for stem in stems
            ]

        def one(paths: tuple[Path, Path, Path]) -> None:
            preprocess_image(*paths, **settings)

        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(one, work))
        else:
            for paths in work:
                one(paths)
    return len(work)


def preprocess_prompt(
    image_dir: str | Path,
    tensor_dir: str | Path,
    preview_dir: str | Path,
    stems: Sequence[str],
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
    threads: int = 1,
) -> int:
    """One folder of PNGs (``<stem>.png``) -> a folder of tensors and one of previews."""
    return preprocess_shard(
        image_dir,
        tensor_dir,
        preview_dir,
        {"": stems},
        ShardLayout(sharded=False),
        size=size,
        grayscale=grayscale,
        interpolation=interpolation,
        threads=threads,
    )
