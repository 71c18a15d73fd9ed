"""The jobs a Snakemake run plans, read from Snakemake's structured log records.

Snakemake 9 prints the jobs a (dry) run will execute only as text for people; its
logger plugins receive the same as records with fields.  The plugin in
tests/support/logger_plugins writes them as JSON lines (its docstring shows them), and
this module runs Snakemake with it and reads them back.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.runs import run_snakemake

# put on a run's PYTHONPATH: Snakemake finds logger plugins by their package name
LOGGER_PLUGINS = Path(__file__).parent / "logger_plugins"


@dataclass(frozen=True)
class JobPlan:
    jobs: list[tuple[str, dict[str, str]]]  # each job to run: its rule and its wildcards
    counts: dict[str, int]  # rule -> jobs, Snakemake's "Job stats" ("total" left out)


def job_log_arguments(path: Path) -> list[str]:
    """Snakemake's arguments that write the run's planned jobs to ``path``."""
    return ["--logger", "sdcnn-jobs", "--logger-sdcnn-jobs-path", str(path)]


def read_job_plan(path: Path) -> JobPlan:
    """The plan in a job log; no ``run_info`` record (nothing to be done): no jobs.

    No log at all is an error: Snakemake ran no logger plugin (it runs none in
    ``--mode remote`` or ``subprocess``, a cluster job's modes)."""
    if not path.is_file():
        raise AssertionError(f"no job log {path}: Snakemake ran no logger plugin")
    jobs, counts = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["event"] == "job_info":
            jobs.append((record["rule"], record["wildcards"]))
        elif record["event"] == "run_info":
            counts = {rule: n for rule, n in record["stats"].items() if rule != "total"}
    return JobPlan(jobs, counts)


def dry_run(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[JobPlan, subprocess.CompletedProcess[str]]:
    """``snakemake --dry-run ARGS`` in ``workdir`` (in ``env``, as run_snakemake): the jobs
    it plans, and what it printed."""
    with tempfile.TemporaryDirectory(prefix="sdcnn-jobs-") as folder:
        log = Path(folder) / "jobs.jsonl"  # the plugin makes it
        result = run_snakemake(
            workdir,
            "--dry-run",
            *args,
            *job_log_arguments(log),
            env=env,
            pythonpath=[LOGGER_PLUGINS],
        )
        return read_job_plan(log), result
