"""Pipeline overhead: the default workflow vs one Python process doing the same work.

    .venv/bin/python benchmarks/pipeline_overhead.py [--cores 2] [--repeats 2] [--samples 3]

Each repeat runs, from scratch in fresh copies of the workflow (default config, image
store off):
- ``snakemake --cores N`` (every step a job of its own: a Python process, its imports,
  its model load);
- ``benchmarks/single_process.py``: the same package functions in one process.
It checks that both made byte-identical data outputs (the same work), prints both wall
times and their ratio (goal: <= 1.3x), and where the workflow's time goes: each rule's
job time from Snakemake's benchmark files, and the import cost of each kind of step (the
best of ``--samples`` fresh processes, as is the dry run's time).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, copy_workflow, data_files, job_seconds, machine, snakemake

IMPORTS = {
    "python (bare)": "pass",
    "generate (torch + diffusers)": "import torch; from diffusers import DiffusionPipeline",
    "predict (torch)": "import torch",
    "preprocess (cv2)": "import cv2",
    "figures (matplotlib)": "import matplotlib; matplotlib.use('Agg'); import matplotlib.figure",
    "snakemake script preamble": "import snakemake.io, snakemake.logging",
}


def import_seconds(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=3, help="of each start-up time")
    parser.add_argument(
        "--config", type=Path, default=REPO / "config" / "config.yaml", help="another config"
    )
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    config["store"] = {"enabled": False}
    pipeline_times, single_times = [], []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for repeat in range(args.repeats):
            workflow = copy_workflow(scratch / f"workflow{repeat}", config)
            started = time.perf_counter()
            snakemake(workflow, "--cores", str(args.cores), "--quiet")
            pipeline_times.append(time.perf_counter() - started)

            single = copy_workflow(scratch / f"single{repeat}", config)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, str(REPO / "benchmarks" / "single_process.py"), str(single)],
                check=True,
                capture_output=True,
            )
            single_times.append(time.perf_counter() - started)

            ours, theirs = data_files(workflow / "results"), data_files(single / "results")
            differing = sorted(name for name in ours if ours[name] != theirs.get(name))
            missing = sorted(set(ours) ^ set(theirs))
            if differing or missing:
                sys.exit(f"not the same work: differing {differing}, missing {missing}")
        seconds = job_seconds(workflow / "results")
        nothing_to_do = min(timed_dry_run(workflow) for _ in range(args.samples))
    imports = {
        name: min(import_seconds(code) for _ in range(args.samples))
        for name, code in IMPORTS.items()
    }

    pipeline, single = min(pipeline_times), min(single_times)
    print(machine())
    print(
        f"{args.config.name} ({len(config['prompts'])} prompts, "
        f"{sum(p['n_images'] for p in config['prompts'].values())} images), image store off, "
        f"same data outputs byte for byte: yes ({len(ours)} files)"
    )
    print(
        f"snakemake --cores {args.cores}: best {pipeline:.1f} s "
        f"(runs: {', '.join(f'{t:.1f}' for t in pipeline_times)})"
    )
    print(
        f"one Python process:   best {single:.1f} s "
        f"(runs: {', '.join(f'{t:.1f}' for t in single_times)})"
    )
    print(f"ratio: {pipeline / single:.2f}x (goal <= 1.3x)")
    print("where the workflow's time goes (last run; jobs overlap on the cores):")
    for rule, values in sorted(seconds.items(), key=lambda item: -sum(item[1])):
        print(
            f"  {rule:18s} {len(values):2d} job(s)  {sum(values):6.2f} s in all, "
            f"{statistics.mean(values):5.2f} s each"
        )
    print(f"  snakemake start-up + DAG (a dry run with nothing to do): {nothing_to_do:.2f} s")
    print("start-up of a fresh Python process per kind of step (imports included):")
    for name, value in imports.items():
        print(f"  {name:30s} {value:5.2f} s")


def timed_dry_run(workflow: Path) -> float:
    started = time.perf_counter()
    snakemake(workflow, "-n", "--quiet")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
