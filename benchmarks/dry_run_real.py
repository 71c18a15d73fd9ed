"""How long ``snakemake -n`` takes with a large real set (``evaluation.real``), and its memory.

    .venv/bin/python benchmarks/dry_run_real.py [--images 100000] [--shards 64] [--size 16]
        [--decode-images N] [--repeats 1]

A folder of ``--images`` tiny PNG files (``--size`` x ``--size``, ImageFolder layout in the
three label folders of SMALL_CONFIG's classifier, cat/dog/ship; a handful of encoded demo
pictures written under many names, so writing them is fast) is the real set of a scratch
copy of the workflow with SMALL_CONFIG's prompts and ``evaluation.shards: --shards``.  Timed
on fresh copies (nothing built yet: every job is planned), with the peak RSS of the Snakemake
process:

- ``baseline``: SMALL_CONFIG without a real set (``evaluation.real: null``);
- ``header``: ``evaluation.check: header`` (a ``stat`` and the format header of each file);
- ``decode``: ``evaluation.check: decode`` (every file decoded, the schema's default), on
  ``--decode-images`` images (default: all of them; fewer where that would take too long,
  and the time a real image then extrapolated to ``--images``).

All of it happens in the main Snakemake process at parse time; Snakemake then lists every
real file as an input of its shard's ``preprocess_real`` job, so the dry run also stats
every file.  To see where the time goes, ``read_real_images`` (the parse-time read and check
alone) is timed in this process too, for ``check`` = none, header and decode.  The files
were just written, so they are in the page cache: a cold cache (a network file system, a
disk after a reboot) adds a read of each file's first blocks (header) or all of it (decode).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import tempfile
import time
from pathlib import Path

import cv2
from common import (  # noqa: F401 (REPO: sys.path)
    REPO,
    copy_workflow,
    dry_run_with_rss,
    machine,
    snakemake,
)

from sdcnn.demo.pictures import draw_picture
from sdcnn.evaluate.real_images import read_real_images
from tests.support.configs import SMALL_CONFIG

LABELS = SMALL_CONFIG["classifier"]["labels"]  # cat, dog, ship
FOLDER_OF_SHAPE = dict(zip(("circle", "square", "triangle"), LABELS, strict=True))
DISTINCT = 30  # encoded pictures, written under many names


def write_real_set(folder: Path, count: int, size: int) -> float:
    """``count`` PNG files ``<label>/<index>.png`` in ``folder``; the seconds it took."""
    started = time.perf_counter()
    encoded = []
    for seed in range(2_000_000, 2_000_000 + DISTINCT):
        rgb, prompt = draw_picture(seed)
        small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        assert ok
        encoded.append((FOLDER_OF_SHAPE[prompt.rsplit(" ", 1)[1]], data.tobytes()))
    for label in LABELS:
        (folder / label).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        label, data = encoded[index % DISTINCT]
        (folder / label / f"{index:06d}.png").write_bytes(data)
    return time.perf_counter() - started


def config_of(real: Path | None, shards: int, check: str) -> dict:
    config = copy.deepcopy(SMALL_CONFIG)
    config["evaluation"] = {"real": None if real is None else str(real), "shards": shards}
    if real is not None:
        config["evaluation"]["check"] = check
    return config


def job_counts(workdir: Path) -> dict[str, int]:
    """Rule -> jobs, from the dry run's first "Job stats" table."""
    lines = snakemake(workdir, "-n", "--quiet", "rules").stdout.splitlines()
    start = lines.index("Job stats:") + 3
    counts = {}
    for line in lines[start:]:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--decode-images", type=int, default=None, help="default: --images")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    decode_images = args.decode_images or args.images
    print(machine())
    print(f"date {datetime.date.today()}, OpenCV {cv2.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        real = scratch / "real"
        seconds = write_real_set(real, args.images, args.size)
        total_bytes = sum(p.stat().st_size for p in real.rglob("*.png"))
        print(
            f"wrote {args.images} PNG files of {args.size}x{args.size} in {seconds:.1f} s "
            f"({total_bytes / args.images:.0f} bytes each, {DISTINCT} distinct pictures)"
        )
        decode_real = real
        if decode_images != args.images:
            decode_real = scratch / "real-decode"
            write_real_set(decode_real, decode_images, args.size)

        print(f"read_real_images in this process (load average {os.getloadavg()[0]:.2f}):")
        for check in ("none", "header", "decode"):
            folder, count = (decode_real, decode_images) if check == "decode" else (real, None)
            count = count or args.images
            started = time.perf_counter()
            images = read_real_images(folder, LABELS, check=check)
            took = time.perf_counter() - started
            assert len(images) == count
            print(
                f"  check={check:6s} {count:>7} images  {took:7.2f} s  "
                f"{1000 * took / count:.3f} ms an image"
            )

        cases = {
            "baseline (no real set)": (None, "header", 0),
            "check: header": (real, "header", args.images),
            "check: decode": (decode_real, "decode", decode_images),
        }
        for index, (name, (folder, check, count)) in enumerate(cases.items()):
            workdir = copy_workflow(scratch / f"case{index}", config_of(folder, args.shards, check))
            jobs = job_counts(workdir)
            runs = [dry_run_with_rss(workdir) for _ in range(args.repeats)]
            times = [s for s, _ in runs]
            rss = max(r for _, r in runs)
            load = os.getloadavg()[0]
            rows.append((name, count, jobs, min(times), rss, load))
    baseline = rows[0][3]
    print(
        f"snakemake -n --quiet, SMALL_CONFIG's prompts, evaluation.shards {args.shards}, "
        f"nothing built yet (min of {args.repeats}):"
    )
    print(
        f"  {'case':24s} {'real images':>11s} {'jobs':>5s} {'real jobs':>9s} {'wall s':>8s} "
        f"{'over baseline s':>15s} {'ms an image':>11s} {'peak RSS MB':>11s} {'load':>5s}"
    )
    for name, count, jobs, seconds, rss, load in rows:
        real_jobs = jobs.get("preprocess_real", 0) + jobs.get("predict_real", 0)
        extra = seconds - baseline
        per_image = f"{1000 * extra / count:.3f}" if count else "-"
        print(
            f"  {name:24s} {count:>11} {sum(v for k, v in jobs.items() if k != 'total'):>5} "
            f"{real_jobs:>9} {seconds:8.2f} {extra:15.2f} {per_image:>11s} {rss:11.0f} "
            f"{load:5.2f}"
        )
    if decode_images != args.images:
        name, count, _, seconds, _, _ = rows[2]
        extrapolated = baseline + (seconds - baseline) * args.images / count
        print(
            f"  check: decode extrapolated to {args.images} images: {extrapolated:.1f} s "
            f"(baseline + {args.images / count:.0f}x its time over the baseline)"
        )


if __name__ == "__main__":
    main()
