"""How long `snakemake --report` takes: prints the figures, asserts nothing.

    python benchmarks/report_build.py                 # copy the workflow, run the default
                                                      # config once, then time the report
    python benchmarks/report_build.py --workdir DIR   # time the report of a finished run in DIR

Each build runs without any network (in a fresh network namespace via `unshare -n`
when that is allowed, as root is) to show that the report needs none.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import copy_workflow


def offline_prefix() -> list[str]:
    """`unshare -n` where it works here, else nothing (then the build may reach a network)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def timed(command: list[str], workdir: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="a folder with a finished run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snakemake = [sys.executable, "-m", "snakemake"]
    workdir = args.workdir
    if workdir is None:
        workdir = copy_workflow(Path(tempfile.mkdtemp(prefix="sdcnn-report-bench-")))
        seconds = timed([*snakemake, "--cores", "2"], workdir)
        print(f"pipeline, default config, 2 cores: {seconds:.1f} s  ({workdir})")
    prefix = offline_prefix()
    report = workdir / "results" / "report.html"
    times = [
        timed([*prefix, *snakemake, "--report", str(report)], workdir) for _ in range(args.repeat)
    ]
    network = "no network (unshare -n)" if prefix else "network not disabled"
    print(
        f"snakemake --report, {network}: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} builds; "
        f"{report.stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
