"""Preprocess speed: the workflow's preprocess step vs a raw OpenCV loop (goal: >= 0.9x).

    .venv/bin/python benchmarks/preprocess_speed.py [--images 200] [--side 512] [--repeats 5]

Both read the same PNGs and make 224x224 grayscale tensors with INTER_AREA:
- raw loop: cv2.imread + cvtColor + resize + np.save (uint8, nothing else);
- the step's function, ``sdcnn.preprocess.image_to_tensor.preprocess_prompt``: also float32
  in [0, 1], the input checks, a preview PNG per image, and atomic output folders;
- the whole Snakemake job (``snakemake --forcerun preprocess``), process start included.
OpenCV runs on one thread in both loops, as the workflow pins it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml
from common import REPO, copy_workflow, describe, machine, snakemake, timed

cv2.setNumThreads(1)


def make_images(folder: Path, prompt_id: str, count: int, side: int) -> list[str]:
    """Smooth random colour images (compress like photos, unlike white noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    stems = []
    for index in range(count):
        noise = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        image = cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC)
        stem = f"{prompt_id}_{index:03d}"
        cv2.imwrite(str(folder / f"{stem}.png"), image)
        stems.append(stem)
    return stems


def raw_loop(image_dir: Path, stems: list[str], out_dir: Path, size: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        image = cv2.imread(str(image_dir / f"{stem}.png"))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
        np.save(out_dir / f"{stem}.npy", small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from sdcnn.preprocess.image_to_tensor import preprocess_prompt

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        images = scratch / "images"
        stems = make_images(images, "bench", args.images, args.side)

        def step(threads: int) -> None:
            preprocess_prompt(
                images,
                scratch / "tensors",
                scratch / "previews",
                stems,
                size=args.size,
                grayscale=True,
                interpolation="auto",
                threads=threads,
            )

        def clear_outputs() -> None:
            """Both loops start without outputs, as a job does (Snakemake removes them first)."""
            for name in ("raw", "tensors", "previews"):
                shutil.rmtree(scratch / name, ignore_errors=True)

        times = {
            "raw cv2 loop (uint8 .npy, 1 thread)": timed(
                lambda: raw_loop(images, stems, scratch / "raw", args.size),
                args.repeats,
                clear_outputs,
            ),
            "preprocess step, threads: 1": timed(lambda: step(1), args.repeats, clear_outputs),
            "preprocess step, threads: 2": timed(lambda: step(2), args.repeats, clear_outputs),
        }
        workdir = copy_workflow(scratch / "workflow")
        config = {
            "prompts": {"bench": {"text": "benchmark", "n_images": args.images}},
            "preprocess": {"size": args.size},
        }
        (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        shutil.copytree(images, workdir / "results" / "images" / "bench")
        times["snakemake job, threads: 1 (start-up included)"] = timed(
            lambda: snakemake(
                workdir,
                "--cores",
                "1",
                "results/tensors/bench",
                "--forcerun",
                "preprocess",
                "--allowed-rules",
                "preprocess",
                "--quiet",
            ),
            max(2, args.repeats // 2),
        )

    raw_rate = args.images / min(next(iter(times.values())))
    print(machine())
    print(f"{args.images} PNGs of {args.side}x{args.side} -> {args.size}x{args.size} grayscale")
    for name, runs in times.items():
        rate = args.images / min(runs)
        print(f"{name:48s} {describe(runs)}  {rate:6.1f} images/s  {rate / raw_rate:.2f}x raw")
    print("goal: the preprocess step >= 0.9x the raw loop")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
