"""The evaluation on real images (``evaluation.real``): its cost per real image, per stage.

    .venv/bin/python benchmarks/evaluation_cost.py [--counts 200 1000] [--big-sizes 512 1024]
        [--big-count 50] [--repeats 3] [--run-images 200] [--run-cores 1]

(a) The library functions, in this process, on real sets in ImageFolder layout (labels
circle, square, triangle): ``--counts`` 64x64 PNG demo pictures (``draw_picture(seed)``,
seeds from 2,000,000: seeds no demo run draws), and ``--big-count`` JPEGs of each
``--big-sizes`` (a demo picture scaled up with INTER_CUBIC, Gaussian noise of sigma 6 so
that it compresses like a photo, quality 90) to show how decoding grows with the pixels.
Stages, each timed ``--repeats`` times (the min is the figure; the files are in the page
cache):

- ``read, check=none|header|decode``: ``read_real_images`` (the parse-time read of the set,
  in the main Snakemake process before any job): listing only, + a ``stat`` and the format
  header of each file, + a decode of each (JPEG at 1/8 scale);
- ``preprocess_real``: ``preprocess_real_shard`` to size 32 grayscale, 1 thread;
- ``predict_real``: ``predict_real_shard``, torch backend, 1 thread, seeded Glorot weights
  (``init_weights``, as the ``init_weights`` rule writes them, with the labels); one model
  load per call; torch is imported before the timing (a job pays that on top: see (b));
- ``score``: the summary's scoring of that prediction file,
  ``RealCounts.from_documents(iter_predictions(...))`` + ``evaluation_metrics``.

predict and score are measured on the 64x64 sets only: their tensors are 32x32 whatever
the file's size.

(b) With ``--run-images`` > 0: a real Snakemake run on a scratch copy of the workflow
(SMALL_CONFIG, ``classifier.weights: glorot``, that many 64x64 PNGs as ``evaluation.real``
in 2 shards, labels cat/dog/ship for the three shapes) of ``--until predict_real`` with
``--cores --run-cores``; each job's wall time from its benchmark TSV against (a)'s library
time for its images: the difference is the job's own cost (a Python process, imports, the
step's log, Snakemake's bookkeeping).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL
import torch
from common import REPO, copy_workflow, machine, snakemake, timed

from sdcnn.classify.weights import init_weights, save_weights
from sdcnn.demo.pictures import draw_picture
from sdcnn.evaluate.real_images import RealImage, read_real_images, shard_real_images
from sdcnn.evaluate.real_prediction import predict_real_shard
from sdcnn.evaluate.real_shard import preprocess_real_shard
from sdcnn.evaluate.scores import RealCounts, evaluation_metrics
from sdcnn.reporting.summary import iter_predictions
from tests.support.configs import SMALL_CONFIG

SHAPES = ("circle", "square", "triangle")
SIZE, GRAYSCALE, INTERPOLATION = 32, True, "auto"
FIRST_SEED = 2_000_000


def write_set(folder: Path, count: int, size: int | None = None, folders=None) -> Path:
    """``count`` demo pictures in ``folder/<label>/``: 64x64 PNGs, or ``size`` x ``size``
    JPEGs (scaled up, with noise); ``folders`` maps a shape to its label folder."""
    folders = folders or {shape: shape for shape in SHAPES}
    rng = np.random.default_rng(0)
    for index in range(count):
        rgb, prompt = draw_picture(FIRST_SEED + index)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        label = folders[prompt.rsplit(" ", 1)[1]]
        (folder / label).mkdir(parents=True, exist_ok=True)
        if size is None:
            ok = cv2.imwrite(str(folder / label / f"{index:06d}.png"), bgr)
        else:
            big = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
            noisy = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
            path = folder / label / f"{index:06d}.jpg"
            ok = cv2.imwrite(str(path), noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
    return folder


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


class Stages:
    """The stages of (a) on one real set; ``rows`` collects (stage, set, images, min s)."""

    def __init__(self, scratch: Path, weights: Path, repeats: int) -> None:
        self.scratch, self.weights, self.repeats = scratch, weights, repeats
        self.rows: list[tuple[str, str, int, float, float]] = []

    def time(self, stage: str, name: str, count: int, function: Callable[[], Any], setup=None):
        times = timed(function, self.repeats, setup)
        self.rows.append((stage, name, count, min(times), os.getloadavg()[0]))

    def measure(self, name: str, folder: Path, predict: bool) -> None:
        images: list[RealImage] = read_real_images(folder, SHAPES, check="none")
        count = len(images)
        for check in ("none", "header", "decode"):
            reading = lambda check=check: read_real_images(folder, SHAPES, check=check)  # noqa: E731
            self.time(f"read, check={check}", name, count, reading)
        tensors = self.scratch / f"tensors-{name}"
        files = {image.image_id: image.path for image in images}
        self.time(
            "preprocess_real",
            name,
            count,
            lambda: preprocess_real_shard(
                files,
                tensors,
                size=SIZE,
                grayscale=GRAYSCALE,
                interpolation=INTERPOLATION,
                threads=1,
            ),
            setup=lambda: remove(tensors),
        )
        if not predict:
            return
        output = self.scratch / f"predictions-{name}.json"
        records = {i.image_id: {"path": i.relative, "label": i.label} for i in images}

        def predict_call() -> None:
            predict_real_shard(
                records,
                tensors,
                output,
                shard="1-of-1",
                backend="torch",
                weights_path=str(self.weights),
                labels=list(SHAPES),
                gpus=0,
                threads=1,
                julia_project=REPO / "julia",
            )

        self.time("predict_real (torch)", name, count, predict_call, setup=lambda: remove(output))
        self.time("score", name, count, lambda: score([output]))


def score(outputs: list[Path]) -> dict[str, Any]:
    counts = RealCounts.from_documents(iter_predictions(outputs))
    return evaluation_metrics(counts, None)


def print_table(rows: list[tuple[str, str, int, float, float]]) -> None:
    print(f"  {'stage':22s} {'set':14s} {'images':>6s} {'total s':>8s} {'ms an image':>11s}  load")
    for stage, name, count, seconds, load in rows:
        print(
            f"  {stage:22s} {name:14s} {count:>6} {seconds:8.3f} "
            f"{1000 * seconds / count:11.3f}  {load:4.2f}"
        )


def library_costs(args: argparse.Namespace, scratch: Path, weights: Path) -> dict[str, float]:
    """(a): prints the table; returns each stage's ms an image on the largest 64x64 set."""
    stages = Stages(scratch, weights, args.repeats)
    for count in args.counts:
        folder = write_set(scratch / f"png-{count}", count)
        stages.measure(f"{count} png 64", folder, predict=True)
    for size in args.big_sizes:
        folder = write_set(scratch / f"jpeg-{size}", args.big_count, size)
        size_kb = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / args.big_count / 1024
        print(f"{args.big_count} JPEGs {size}x{size}: {size_kb:.0f} KiB each")
        stages.measure(f"{args.big_count} jpeg {size}", folder, predict=False)
    print(
        f"(a) library functions, min of {args.repeats}; size {SIZE}, grayscale, 1 thread, "
        "torch backend:"
    )
    print_table(stages.rows)
    largest = f"{max(args.counts)} png 64"
    per_image = {stage: s / n for stage, name, n, s, _ in stages.rows if name == largest}
    if len(args.counts) > 1:
        small, large = sorted(args.counts)[0], max(args.counts)
        by = {(stage, n): s for stage, _, n, s, _ in stages.rows}
        print(f"  marginal cost an image between {small} and {large} png 64 images:")
        for stage in ("preprocess_real", "predict_real (torch)", "score"):
            extra = (by[(stage, large)] - by[(stage, small)]) / (large - small)
            fixed = by[(stage, small)] - small * extra
            print(f"    {stage:22s} {1000 * extra:.3f} ms an image, fixed {fixed:.3f} s a call")
    return per_image


def snakemake_run(args: argparse.Namespace, scratch: Path, per_image: dict[str, float]) -> None:
    """(b): one run of the real shards' jobs; each job against the library's time."""
    labels = SMALL_CONFIG["classifier"]["labels"]
    folders = dict(zip(SHAPES, labels, strict=True))
    real = write_set(scratch / "run-real", args.run_images, folders=folders)
    config = copy.deepcopy(SMALL_CONFIG)
    config["classifier"]["weights"] = "glorot"
    config["evaluation"] = {"real": str(real), "shards": 2, "check": "decode"}
    workdir = copy_workflow(scratch / "run", config)
    started = time.perf_counter()
    snakemake(workdir, "--cores", str(args.run_cores), "--quiet", "--until", "predict_real")
    wall = time.perf_counter() - started
    load = os.getloadavg()[0]
    images = read_real_images(real, labels, check="none")
    sizes = {shard: len(members) for shard, members in shard_real_images(images, 2).items()}
    library = {"preprocess_real": "preprocess_real", "predict_real": "predict_real (torch)"}
    print(
        f"(b) snakemake --cores {args.run_cores} --until predict_real: {args.run_images} real "
        f"64x64 PNGs in 2 shards, {wall:.1f} s in all (load average {load:.2f}); "
        "job = its benchmark TSV's s, library = (a)'s ms an image x its images:"
    )
    print(
        f"  {'rule':16s} {'shard':8s} {'images':>6s} {'job s':>7s} {'library s':>9s} "
        f"{'job - library s':>15s} {'job ms an image':>15s}"
    )
    for rule, stage in library.items():
        for tsv in sorted((workdir / "results" / "benchmarks" / rule).glob("*.tsv")):
            with tsv.open() as handle:
                seconds = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
            count = sizes[tsv.stem]
            expected = per_image[stage] * count
            print(
                f"  {rule:16s} {tsv.stem:8s} {count:>6} {seconds:7.2f} {expected:9.2f} "
                f"{seconds - expected:15.2f} {1000 * seconds / count:15.2f}"
            )
    subprocess.run([sys.executable, "-c", "import torch"], check=True)  # the page cache warm
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    print(f"  for scale: `python -c 'import torch'` takes {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--big-sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--big-count", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-images", type=int, default=200, help="0: no Snakemake run")
    parser.add_argument("--run-cores", type=int, default=1)
    args = parser.parse_args()
    print(machine())
    print(
        f"date {datetime.date.today()}, torch {torch.__version__}, OpenCV {cv2.__version__}, "
        f"Pillow {PIL.__version__}, NumPy {np.__version__}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        weights_path = scratch / "glorot.safetensors"
        glorot = init_weights(seed=42, in_channels=1, image_size=SIZE, n_labels=len(SHAPES))
        save_weights(weights_path, dataclasses.replace(glorot, labels=list(SHAPES)))
        per_image = library_costs(args, scratch, weights_path)
        if args.run_images > 0:
            snakemake_run(args, scratch, per_image)


if __name__ == "__main__":
    main()
