"""Diversity per prompt (sdcnn.evaluate.diversity): its cost per image against generate's.

    .venv/bin/python benchmarks/diversity_cost.py [--counts 100 1000 10000] [--sizes 64 32]
        [--repeats 3] [--files-up-to 1000]

For each size and count, one prompt of N demo pictures (``draw_picture(seed)``, seeds 0 to
N - 1, resized with INTER_AREA for sizes other than 64) as float32 (3, S, S) tensors, timed:
its pHash (``phash``), the mean distance (``Spread``), the near-duplicate pairs
(``near_duplicates``, all n (n - 1) / 2 pairs) and the whole ``prompt_diversity`` in memory;
up to ``--files-up-to`` images also ``files_diversity`` from ``.npy`` files (reading them
included), as a step of its own would.  The cost per image is set against generate's per
image from RESULTS.md: §4 (64x64, 4 steps, the demo model: 0.110-0.140 s an image, the
lower end used) and §10 (32x32, 1 step: 47.5 ms CPU an image).  Issue 30 asks for a few %
of generate's cost at most.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np
from common import REPO, machine, timed  # noqa: F401 (REPO: sys.path)

from sdcnn.demo.pictures import SIZE, draw_picture
from sdcnn.evaluate.diversity import (
    DiversitySettings,
    Spread,
    files_diversity,
    near_duplicates,
    phash,
    prompt_diversity,
)

# generate's time an image, seconds, and where RESULTS.md has it
GENERATE_PER_IMAGE = {
    64: (0.110, "RESULTS §4: 64x64, 4 steps, wall"),
    32: (0.0475, "RESULTS §10: 32x32, 1 step, CPU"),
}


def pictures(count: int, size: int) -> np.ndarray:
    """``count`` demo pictures as an (N, 3, size, size) float32 batch in [0, 1]."""
    batch = np.empty((count, 3, size, size), np.float32)
    for seed in range(count):
        rgb = draw_picture(seed)[0]
        if size != SIZE:
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        batch[seed] = rgb.transpose(2, 0, 1) / np.float32(255)
    return batch


def describe(times: list[float]) -> str:
    return f"median {statistics.median(times):.4f} s (min {min(times):.4f}, n={len(times)})"


def spread_of(batch: np.ndarray) -> float | None:
    spread = Spread()
    spread.add(batch)
    return spread.mean_squared_distance()


def share(seconds: float, count: int, size: int) -> str:
    """Seconds for ``count`` images as ms an image, and as a share of generate's."""
    per_image = seconds / count
    text = f"{per_image * 1000:.3f} ms an image"
    if size in GENERATE_PER_IMAGE:
        generate, _ = GENERATE_PER_IMAGE[size]
        text += f" = {100 * per_image / generate:.3f}% of generate's {generate * 1000:.1f} ms"
    return text


def measure(count: int, size: int, repeats: int, files_up_to: int) -> None:
    batch = pictures(count, size)
    ids = [f"img_{index:05d}" for index in range(count)]
    settings = DiversitySettings()
    hashes = phash(batch)
    parts = {
        "hash": timed(lambda: phash(batch), repeats),
        "mean distance": timed(lambda: spread_of(batch), repeats),
        "pairs": timed(lambda: near_duplicates(hashes, settings.max_hamming, 100), repeats),
    }
    result = prompt_diversity("p", ids, batch)
    whole = timed(lambda: prompt_diversity("p", ids, batch), repeats)
    medians = ", ".join(f"{name} {statistics.median(t):.4f} s" for name, t in parts.items())
    print(f"{size}x{size} {count:>6} images: {medians}")
    print(f"  in memory  {describe(whole)}  {share(min(whole), count, size)}")
    if count <= files_up_to:
        with tempfile.TemporaryDirectory() as folder:
            paths = [Path(folder) / f"{image_id}.npy" for image_id in ids]
            for path, values in zip(paths, batch, strict=True):
                np.save(path, values)
            from_files = timed(lambda: files_diversity("p", paths), repeats)
        print(f"  .npy files {describe(from_files)}  {share(min(from_files), count, size)}")
    print(
        f"  mean distance {result['mean_distance']:.3f}, near-duplicate pairs "
        f"{result['n_near_duplicates']} ({result['n_with_near_duplicate']} images)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files-up-to", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    print(
        f"date {datetime.date.today()}, numpy {np.__version__}, OpenCV {cv2.__version__}; "
        f"pHash, max_hamming {DiversitySettings().max_hamming}, 3 channels"
    )
    for size, (seconds, where) in GENERATE_PER_IMAGE.items():
        print(f"generate {size}x{size}: {seconds * 1000:.1f} ms an image ({where})")
    for size in args.sizes:
        for count in args.counts:
            measure(count, size, args.repeats, args.files_up_to)
    print("median and min of the whole measure; ms an image and % of generate from the min")


if __name__ == "__main__":
    main()
