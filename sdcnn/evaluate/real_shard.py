"""A shard of real images through the preprocess step's functions, with the same
settings as the synthetic images: one ``<image id>.npy`` tensor per image.

    preprocess_real_shard({image_id: path}, "tensors/01-of-04", size=32, grayscale=True,
                          interpolation="auto")

Their predictions: ``sdcnn.evaluate.real_prediction``.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from sdcnn.core.fileio import atomic_directory
from sdcnn.core.naming import tensor_path
from sdcnn.evaluate.real_images import preprocess_real_image


def preprocess_real_shard(
    files: Mapping[str, str | Path],
    tensor_dir: str | Path,
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
    threads: int = 1,
) -> int:
    """Real image files (image id -> file) -> ``<tensor_dir>/<image id>.npy``, float32
    ``(C, size, size)`` in [0, 1]; the folder appears only once every image is done (a
    file refused names itself, and nothing is left).  Returns the number of images."""
    cv2.setNumThreads(1)  # parallel over images, not inside each small resize

    def one(item: tuple[str, str | Path], folder: Path) -> None:
        image_id, path = item
        tensor = preprocess_real_image(path, size, grayscale, interpolation)
        np.save(tensor_path(folder, image_id), tensor, allow_pickle=False)

    with atomic_directory(tensor_dir) as folder:
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda item: one(item, folder), files.items()))
        else:
            for item in files.items():
                one(item, folder)
    return len(files)
