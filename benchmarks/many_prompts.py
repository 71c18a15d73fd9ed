"""Many prompts in shards vs the same work done at once (goal: <= 1.3x), and what a shard costs.

    .venv/bin/python benchmarks/many_prompts.py [--prompts 200] [--shards 4] [--cores 2]
        [--size 64] [--steps 4] [--repeats 1]

From scratch, in fresh copies of the workflow (image store off, every other setting the
default config's), with a sheet of N prompts x 1 image:
- ``snakemake`` with ``shards: S``: one generate, preprocess, predict and figures job a shard;
- one Python process doing the same work (benchmarks/single_process.py), checked byte for byte;
- ``snakemake`` on 1 prompt x N images: the same number of images to compute, no sharding.
It prints the wall times and their ratios, each rule's job times, and the fixed cost of a
generate job (process start, imports, model load: its wall time less the time its images
took) against the cost of one image, from which the README's rule of thumb for choosing S.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, copy_workflow, data_files, job_seconds, machine, snakemake


def base_config(size: int, steps: int) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["generation"].update({"height": size, "width": size, "steps": steps})
    config["store"] = {"enabled": False}
    config["classifier"]["weights"] = "glorot"  # the sheet's prompts have no labels
    return config


def write_sheet(path: Path, rows: list[tuple[str, str, int]]) -> None:
    lines = ["prompt_id\ttext\tn_images", *(f"{pid}\t{text}\t{n}" for pid, text, n in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def workflow(folder: Path, config: dict, rows: list[tuple[str, str, int]]) -> Path:
    workdir = copy_workflow(folder, {**config, "prompts": "prompts.tsv"})
    write_sheet(workdir / "prompts.tsv", rows)
    return workdir


def timed_run(workdir: Path, cores: int) -> float:
    started = time.perf_counter()
    snakemake(workdir, "--cores", str(cores), "--quiet")
    return time.perf_counter() - started


def image_seconds(log: Path) -> list[float]:
    """The time each batch of images took, from a generate log."""
    return [float(s) for s in re.findall(r"generated in ([0-9.]+) s", log.read_text())]


def generate_costs(workdir: Path) -> tuple[float, float]:
    """(fixed seconds per generate job, seconds per image), from the jobs' logs and times."""
    results = workdir / "results"
    fixed, per_image = [], []
    for log in sorted((results / "logs" / "generate").glob("*.log")):
        tsv = results / "benchmarks" / "generate" / f"{log.stem}.tsv"
        job = float(tsv.read_text().splitlines()[1].split("\t")[0])
        images = image_seconds(log)
        fixed.append(job - sum(images))
        per_image += images
    return statistics.median(fixed), statistics.median(per_image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    config = base_config(args.size, args.steps)
    many = [(f"p{i:05d}", f"a picture number {i}", 1) for i in range(args.prompts)]
    one = [("p00000", "a picture number 0", args.prompts)]
    times: dict[str, list[float]] = {"sharded": [], "single": [], "one prompt": []}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for repeat in range(args.repeats):
            with_shards = {**config, "shards": args.shards}
            sharded = workflow(scratch / f"sharded{repeat}", with_shards, many)
            times["sharded"].append(timed_run(sharded, args.cores))
            single = workflow(scratch / f"single{repeat}", with_shards, many)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, str(REPO / "benchmarks" / "single_process.py"), str(single)],
                check=True,
                capture_output=True,
            )
            times["single"].append(time.perf_counter() - started)
            ours, theirs = data_files(sharded / "results"), data_files(single / "results")
            names = set(ours) | set(theirs)
            differing = sorted(name for name in names if ours.get(name) != theirs.get(name))
            if differing:
                sys.exit(f"not the same work: {differing[:10]}")
            unsharded = workflow(scratch / f"one{repeat}", {**config, "shards": None}, one)
            times["one prompt"].append(timed_run(unsharded, args.cores))
        seconds = job_seconds(sharded / "results")
        fixed, per_image = generate_costs(sharded)
    best = {name: min(values) for name, values in times.items()}
    print(machine())
    print(
        f"{args.prompts} prompts x 1 image in {args.shards} shards ({args.size}x{args.size}, "
        f"{args.steps} steps), image store off, --cores {args.cores}; "
        f"same data outputs byte for byte as one process: yes ({len(ours)} files)"
    )
    print(f"snakemake, {args.shards} shards:            best {best['sharded']:.1f} s")
    print(f"one Python process, same work:    best {best['single']:.1f} s")
    print(f"snakemake, 1 prompt x {args.prompts} images: best {best['one prompt']:.1f} s")
    for name, other in (("one process", "single"), ("1 prompt", "one prompt")):
        ratio = best["sharded"] / best[other]
        print(f"ratio sharded / {name}: {ratio:.2f}x (goal <= 1.3x)")
    print("jobs of the sharded run (they overlap on the cores):")
    for rule, values in sorted(seconds.items(), key=lambda item: -sum(item[1])):
        print(
            f"  {rule:14s} {len(values):3d} job(s)  {sum(values):7.2f} s in all, "
            f"{statistics.mean(values):6.2f} s each"
        )
    print(
        f"a generate job: {fixed:.2f} s fixed (start, imports, model load) + {per_image:.3f} s "
        f"an image => a shard of {fixed / per_image:.0f} images spends half its time on the "
        f"fixed cost, one of {10 * fixed / per_image:.0f} images a tenth"
    )


if __name__ == "__main__":
    main()
