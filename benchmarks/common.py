"""Helpers shared by the benchmark scripts: a scratch copy of the workflow, timing, machine info."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# one definition of what the workflow is made of, shared with the tests (tests/support/
# workspace.py: test support, not part of the workflow); it imports no pytest
from tests.support.workspace import WORKFLOW_PARTS, copy_workflow  # noqa: E402, F401

# what a run delivers (results/ less logs and benchmarks): compared byte for byte
DATA = (
    "models",
    "weights",
    "images",
    "tensors",
    "previews",
    "predictions",
    "charts",
    "contact_sheets",
    "training",
    "dataset",
)
NOT_DATA = ("plan.json",)  # training/plan.json: the workflow's own record of train's params
DATA_FILES = ("summary.csv", "summary.json", "manifest.json", "summary.html", "run_info.html")


def data_files(results: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if (
            path.is_file()
            and path.name != ".snakemake_timestamp"
            and path.name not in NOT_DATA
            and (relative.parts[0] in DATA or relative.name in DATA_FILES)
        ):
            files[relative.as_posix()] = path.read_bytes()
    return files


def job_seconds(results: Path) -> dict[str, list[float]]:
    """Each rule's job wall times, from results/benchmarks/**.tsv."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for tsv in (results / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as handle:
            seconds[rule] += [float(row["s"]) for row in csv.DictReader(handle, delimiter="\t")]
    return seconds


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def timed(
    function: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None
) -> list[float]:
    """Wall times of ``repeats`` calls; ``setup`` runs before each, untimed."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def describe(times: Sequence[float]) -> str:
    return f"median {statistics.median(times):.2f} s (min {min(times):.2f}, n={len(times)})"


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, load average {load:.2f}"
    )


def dry_run_with_rss(workdir: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, peak RSS of the snakemake process in MB) of one quiet dry run."""
    command = [sys.executable, "-m", "snakemake", "-n", "--quiet", *args]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        sys.exit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024
