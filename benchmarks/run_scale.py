"""The whole run at scale: what every step costs an image, the report, the files.

    .venv/bin/python benchmarks/run_scale.py [--prompts 2000] [--shards 8] [--cores 2]
        [--size 64] [--steps 4] [--workdir DIR] [--refresh] [--report-only]
        [--report-repeats 3]

From scratch (or in ``--workdir``, a run this script made), a sheet of N prompts x 1
image in S shards (the demo model, image store off, every other setting the default
config's; weights glorot: the sheet's prompts have no labels), run by ``snakemake``.
``--refresh`` copies this checkout's workflow into ``--workdir`` and (unless
``--report-only``, which only times the report) runs again only what follows the
predictions (figures, dataset, summary, manifest and the pages; the
images, tensors and predictions are kept), to measure those steps of new code on the
same data without generating it again.  Prints, from each job's benchmark file:
every rule's wall and CPU seconds in all and per image, and the steps after generation
against generate; then ``snakemake --report``'s time and size (offline where
``unshare -n`` works), and how many files the run wrote.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import REPO, WORKFLOW_PARTS, machine, snakemake
from many_prompts import base_config, workflow
from report_build import offline_prefix

AFTER_PREDICT = ("figures", "dataset", "summary", "manifest", "summary_page", "run_info")


def job_costs(results: Path) -> dict[str, list[tuple[float, float]]]:
    """rule -> (wall s, CPU s) of each of its jobs, from results/benchmarks/**.tsv."""
    costs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                cpu = float(row["cpu_time"]) if row.get("cpu_time") not in (None, "", "NA") else 0
                costs[rule].append((float(row["s"]), cpu))
    return costs


def file_counts(results: Path) -> Counter[str]:
    """Files under results/ per top folder (or file name), Snakemake's markers left out."""
    counts: Counter[str] = Counter()
    for path in results.rglob("*"):
        if path.is_file() and path.name != ".snakemake_timestamp":
            counts[path.relative_to(results).parts[0]] += 1
    return counts


def refresh(workdir: Path, keep_benchmarks: bool = False) -> None:
    """This checkout's workflow into ``workdir`` (its config and sheet kept); the
    benchmark files of the steps after predict removed unless ``keep_benchmarks``."""
    config = (workdir / "config" / "config.yaml").read_bytes()
    for part in WORKFLOW_PARTS:
        target = workdir / part
        if target.is_dir():
            shutil.rmtree(target)
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    (workdir / "config" / "config.yaml").write_bytes(config)
    for rule in () if keep_benchmarks else AFTER_PREDICT:
        for stale in (workdir / "results" / "benchmarks").glob(f"{rule}*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workdir", type=Path, help="a run this script made")
    parser.add_argument("--refresh", action="store_true", help="new code after predict")
    parser.add_argument("--report-only", action="store_true", help="time the report only")
    parser.add_argument("--report-repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = args.workdir
    if workdir is None:
        config = {**base_config(args.size, args.steps), "shards": args.shards}
        rows = [(f"p{i:05d}", f"a picture number {i}", 1) for i in range(args.prompts)]
        workdir = workflow(Path(tempfile.mkdtemp(prefix="sdcnn-scale-")), config, rows)
    run = ["--cores", str(args.cores), "--quiet"]
    if args.refresh:
        refresh(workdir, keep_benchmarks=args.report_only)
        run += ["--rerun-triggers", "mtime", "--rerun-incomplete", "--forcerun", *AFTER_PREDICT]
    if args.report_only and args.workdir is None:
        sys.exit("--report-only needs --workdir")
    started = time.perf_counter()
    if not args.report_only:
        snakemake(workdir, *run)
    seconds = time.perf_counter() - started
    results = workdir / "results"
    images = sum(1 for _ in (results / "images").rglob("*.png"))
    print(machine())
    what = "what follows the predictions, again" if args.refresh else "the whole run"
    if not args.report_only:
        print(
            f"{workdir}: {images} images; snakemake ({what}), --cores {args.cores}: {seconds:.1f} s"
        )
    else:
        print(f"{workdir}: {images} images; the report only (the jobs' figures: their run)")
    costs = job_costs(results)
    print("rule           jobs   wall s  CPU s  CPU ms/image  CPU vs generate")
    generate_cpu = sum(cpu for _, cpu in costs.get("generate", [])) or float("nan")
    for rule, jobs in sorted(costs.items(), key=lambda item: -sum(c for _, c in item[1])):
        wall, cpu = sum(w for w, _ in jobs), sum(c for _, c in jobs)
        print(
            f"{rule:14s} {len(jobs):4d} {wall:8.1f} {cpu:6.1f} {1000 * cpu / images:13.2f} "
            f"{cpu / generate_cpu:15.1%}"
        )
    others = [rule for rule in costs if rule != "generate"]
    other_cpu = sum(cpu for rule in others for _, cpu in costs[rule])
    other_wall = sum(wall for rule in others for wall, _ in costs[rule])
    generate_wall = sum(wall for wall, _ in costs.get("generate", [])) or float("nan")
    print(
        f"every step but generate: CPU {other_cpu:.1f} s = {other_cpu / generate_cpu:.1%} "
        f"of generate's {generate_cpu:.1f} s; wall {other_wall:.1f} s = "
        f"{other_wall / generate_wall:.1%} of generate's {generate_wall:.1f} s "
        "(goal <= 25%)"
    )
    prefix = offline_prefix()
    report = results / "report.html"
    times = []
    for _ in range(args.report_repeats):
        begun = time.perf_counter()
        _report(prefix, workdir, report)
        times.append(time.perf_counter() - begun)
    network = "no network (unshare -n)" if prefix else "network not disabled"
    print(
        f"snakemake --report, {network}: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, n={len(times)}); {report.stat().st_size / 1e6:.2f} MB "
        "(goal < 10 s)"
    )
    report.unlink()
    counts = file_counts(results)
    print(
        f"files under results/: {sum(counts.values())}: "
        + ", ".join(f"{name} {n}" for name, n in counts.most_common())
    )


def _report(prefix: list[str], workdir: Path, report: Path) -> None:
    import subprocess

    command = [*prefix, sys.executable, "-m", "snakemake", "--report", str(report)]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    main()
