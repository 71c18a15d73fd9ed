"""The small real set of SMALL_CONFIG: four pictures in ImageFolder layout, written into a
workflow copy beside its config (``evaluation.real: real``), in two real shards:
1-of-2 holds dog/a.png, dog/b.png and ship/b.png, 2-of-2 holds ship/a.png."""

from __future__ import annotations

from pathlib import Path

import cv2

from sdcnn.demo.pictures import draw_picture

SMALL_REAL = "real"  # evaluation.real: a folder in the workflow's folder
SMALL_REAL_FILES = {"dog/a.png": 1_000_000, "dog/b.png": 1_000_001, "ship/a.png": 1_000_002}
SMALL_REAL_FILES["ship/b.png"] = 1_000_003  # path -> the seed of its picture
SMALL_REAL_SHARDS = {"1-of-2": ["dog/a.png", "dog/b.png", "ship/b.png"], "2-of-2": ["ship/a.png"]}


def write_real_picture(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels, _ = draw_picture(seed)
    if not cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def write_small_real_set(workdir: Path) -> Path:
    """SMALL_REAL's four pictures in ``workdir``; the folder."""
    folder = workdir / SMALL_REAL
    for relative, seed in SMALL_REAL_FILES.items():
        write_real_picture(folder / relative, seed)
    return folder
