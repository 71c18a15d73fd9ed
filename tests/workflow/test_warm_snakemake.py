"""The tests' warm Snakemake (tests/support/warm_snakemake.py) is the real CLI: the same plan, the
same errors and exit status as ``python -m snakemake``, and a run past its time is
killed with every job it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import runs, warm_snakemake
from tests.support.configs import SMALL_CONFIG
from tests.support.job_plan import LOGGER_PLUGINS, job_log_arguments, read_job_plan
from tests.support.warm_snakemake import WarmSnakemake
from tests.support.workspace import REPO, copy_workflow, write_config

ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def cold(workdir: Path, *args: str) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


def plan(output: str) -> list[str]:
    """What a dry run says it would do, in a fixed order (Snakemake prints the reasons'
    files in set order, which differs from one process to the next)."""
    lines = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("Date:", "Workflow ID:", "host:", "[")) or not line:
            continue
        if line.startswith("reason:"):
            line = "reason: " + ", ".join(sorted(re.split(r"[,;:] ", line[8:])))
        lines.append(line)
    return sorted(lines)


@pytest.fixture(scope="module")
def warm() -> WarmSnakemake:
    return WarmSnakemake()


def test_a_dry_run_says_what_the_cold_cli_says(warm: WarmSnakemake, tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "w", SMALL_CONFIG)
    args = ("--cores", "2", "--dry-run")
    warm_code, warm_out, warm_err = warm.run(workdir, args, ENV, 300)
    cold_code, cold_out, cold_err = cold(workdir, *args)
    assert warm_code == cold_code == 0, warm_err
    assert plan(warm_out) == plan(cold_out)
    assert warm_err == cold_err  # the workflow profile line
    assert f"Run directory: {workdir}" in warm_out
    assert re.search(r"Command: \S+/snakemake/__main__\.py --cores 2 --dry-run$", warm_out, re.M)


def test_a_logger_plugin_on_pythonpath_plans_what_the_cold_cli_plans(
    warm: WarmSnakemake, tmp_path: Path
) -> None:
    """PYTHONPATH reaches the warm child's sys.path as it does a new Python's: Snakemake
    finds the tests' logger plugin there (tests/support/job_plan.py) and writes the jobs."""
    workdir = copy_workflow(tmp_path / "w", SMALL_CONFIG)
    env = {**ENV, "PYTHONPATH": str(LOGGER_PLUGINS)}
    plans = []
    for name in ("warm", "cold"):
        log = tmp_path / f"{name}.jsonl"
        args = ("--cores", "2", "--dry-run", *job_log_arguments(log))
        if name == "warm":
            code, _, err = warm.run(workdir, args, env, 300)
        else:
            result = subprocess.run(
                [sys.executable, "-m", "snakemake", *args],
                cwd=workdir,
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            code, err = result.returncode, result.stderr
        assert code == 0, err
        plans.append(read_job_plan(log))
    warm_plan, cold_plan = plans
    assert warm_plan.counts == cold_plan.counts
    assert warm_plan.counts["generate"] == len(SMALL_CONFIG["prompts"])
    assert sorted(map(str, warm_plan.jobs)) == sorted(map(str, cold_plan.jobs))
    assert len(warm_plan.jobs) == sum(warm_plan.counts.values())


def test_a_refused_config_fails_as_the_cold_cli_fails(warm: WarmSnakemake, tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "w", SMALL_CONFIG)
    write_config(workdir, {**SMALL_CONFIG, "shards": 0})
    warm_code, _, warm_err = warm.run(workdir, ("--cores", "1"), ENV, 300)
    cold_code, _, cold_err = cold(workdir, "--cores", "1")
    assert warm_code == cold_code == 1
    refused = [
        [line for line in err.splitlines() if "config key shards" in line]
        for err in (warm_err, cold_err)
    ]
    assert refused[0] and refused[0] == refused[1], (warm_err, cold_err)
    assert not (workdir / "results").exists()


def test_a_run_past_its_time_is_killed_with_its_jobs(warm: WarmSnakemake, tmp_path: Path) -> None:
    marker = f"{time.time_ns() % 10**6 + 100}.5"  # `sleep 100xxxx.5`: found by its arguments
    (tmp_path / "Snakefile").write_text(
        f'rule slow:\n    output: "done"\n    shell: "sleep {marker} && touch {{output}}"\n'
    )
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run(tmp_path, ("--cores", "1"), ENV, 5)
    still_running = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True)
    assert still_running.returncode == 1, f"the job outlived its run: {still_running.stdout}"
    code, _, err = warm.run(tmp_path, ("--cores", "1", "--dry-run"), ENV, 300)
    assert code == 0, err  # the server serves the next run


def test_a_child_that_fails_at_once_is_answered(warm: WarmSnakemake, tmp_path: Path) -> None:
    """A child that fails before Snakemake starts (its folder is gone): its exit status
    comes back with the error in its own stderr, and the server serves the next run."""
    for _ in range(10):
        code, _, err = warm.run(tmp_path / "gone", ("--dry-run",), ENV, 20)
        assert code == 1 and "FileNotFoundError" in err, err
    code, _, err = warm.run(tmp_path, ("--version",), ENV, 60)
    assert code == 0, err  # and the server still serves


# ---- the guard: warm runs only with the Snakemake the server was checked against


def test_the_checked_snakemake_is_the_pinned_one() -> None:
    """A new pin in requirements.txt means: run this file's tests with it, then move
    CHECKED_SNAKEMAKE (until then the suite runs Snakemake cold)."""
    pinned = re.search(r"^snakemake==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned and pinned.group(1) == warm_snakemake.CHECKED_SNAKEMAKE


def refuse_warm_runs(*_: object) -> tuple[int, str, str]:
    raise AssertionError("the warm server was used")


def test_another_snakemake_runs_cold(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed = warm_snakemake.installed_snakemake()
    monkeypatch.delenv(runs.COLD_SNAKEMAKE, raising=False)
    monkeypatch.setattr(warm_snakemake, "installed_snakemake", lambda: "0.0.1")
    monkeypatch.setattr(runs.WARM, "run", refuse_warm_runs)
    result = runs.run_snakemake(tmp_path, "--version")
    assert result.stdout.strip() == installed


def test_the_checked_snakemake_runs_warm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(runs.COLD_SNAKEMAKE, raising=False)
    monkeypatch.setattr(warm_snakemake, "installed_snakemake", lambda: "9.27.1")
    monkeypatch.setattr(warm_snakemake, "CHECKED_SNAKEMAKE", "9.27.1")
    calls = []
    monkeypatch.setattr(runs.WARM, "run", lambda *args: calls.append(args) or (0, "", ""))
    runs.run_snakemake(tmp_path, "--version")
    assert len(calls) == 1
