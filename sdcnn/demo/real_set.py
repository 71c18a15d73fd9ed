"""A small "real-like" evaluation set for the demo model, in ImageFolder layout.

The pictures are drawn by the same procedural renderer the demo model learned from
(:func:`sdcnn.demo.pictures.draw_picture`), with seeds it never drew: they are
"real-like" stand-ins for real images, not real photographs.  Each lies at
``<folder>/<shape>/<seed>.png`` (lossless PNG, the renderer's exact pixels), so the
classifier's labels are the folder names, the vocabulary's shapes.  The config value
``evaluation.real: demo`` (:data:`DEMO_REAL`) names the shipped set,
``sdcnn/demo/assets/real-like``.

    python -m sdcnn.demo.real_set [folder]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import cv2

from sdcnn.demo.pictures import SHAPES, draw_picture, random_spec

# The demo model was trained on draw_picture(seed) for seeds 0 .. settings.pictures - 1
# (4000, assets/demo-pipeline/training.json); starting a million up keeps every seed of
# this set far above any training seed, even if the model is retrained on more pictures.
FIRST_SEED = 1_000_000
PER_LABEL = 12  # pictures of each shape
DEMO_REAL = "demo"  # the config value (evaluation.real: demo) that names this set


def real_like_seeds(
    per_label: int = PER_LABEL, first_seed: int = FIRST_SEED
) -> dict[str, list[int]]:
    """Shape -> the first ``per_label`` seeds from ``first_seed`` on that draw that shape,
    in ``SHAPES`` order, each list increasing."""
    if per_label < 0:
        raise ValueError(f"per_label must be at least 0, not {per_label}")
    seeds: dict[str, list[int]] = {shape: [] for shape in SHAPES}
    seed = first_seed
    while any(len(found) < per_label for found in seeds.values()):
        found = seeds[random_spec(seed).shape]
        if len(found) < per_label:
            found.append(seed)
        seed += 1
    return seeds


def write_real_like_set(
    folder: str | Path, per_label: int = PER_LABEL, first_seed: int = FIRST_SEED
) -> int:
    """Write the set's pictures as ``<folder>/<shape>/<seed>.png`` and return how many.

    The PNGs already in the shape folders are removed first, so each holds exactly the
    pictures drawn now; other files are left alone."""
    folder = Path(folder)
    written = 0
    for shape, seeds in real_like_seeds(per_label, first_seed).items():
        label_folder = folder / shape
        label_folder.mkdir(parents=True, exist_ok=True)
        for old in label_folder.glob("*.png"):
            old.unlink()
        for seed in seeds:
            pixels, _ = draw_picture(seed)
            path = label_folder / f"{seed}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
            written += 1
    return written


def demo_real_folder() -> Path:
    """The shipped set: ``sdcnn/demo/assets/real-like``."""
    return Path(__file__).parent / "assets" / "real-like"


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sdcnn.demo.real_set [folder]``: (re)write the set, by default the shipped one."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) > 1:
        raise SystemExit("usage: python -m sdcnn.demo.real_set [folder]")
    folder = Path(arguments[0]) if arguments else demo_real_folder()
    count = write_real_like_set(folder)
    print(f"wrote {count} pictures to {folder}")


if __name__ == "__main__":
    main()
