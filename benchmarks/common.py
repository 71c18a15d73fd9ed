"""Helpers shared by the benchmark scripts: a scratch copy of the workflow, timing, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# one definition of what the workflow is made of, shared with the tests; no pytest needed
from sdcnn.workspace import WORKFLOW_PARTS, copy_workflow  # noqa: E402, F401


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
