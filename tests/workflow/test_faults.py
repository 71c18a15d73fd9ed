"""Faults: two runs at once in one folder, and a job that fails mid-way.

(``kill -9`` of a run during generation is tested with the content-addressed image store.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.pipeline

LOCK_WAIT_S = 120


def wait_for_lock(workdir: Path, run: subprocess.Popen[str]) -> None:
    """Until the run holds Snakemake's lock on its outputs (it takes it after the DAG)."""
    locks = workdir / ".snakemake" / "locks"
    deadline = time.monotonic() + LOCK_WAIT_S
    while not (locks.is_dir() and any(locks.iterdir())):
        if run.poll() is not None:
            pytest.fail(f"the first run ended before it locked: {run.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the first run took no lock within {LOCK_WAIT_S} s")
        time.sleep(0.05)


def test_second_run_in_the_same_folder_is_refused_and_the_first_is_unharmed(
    small_run: Path, tmp_path: Path
) -> None:
    workdir = copy_workflow(tmp_path / "run", SMALL_CONFIG)
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    try:
        wait_for_lock(workdir, first)
        second = run_snakemake(workdir, check=False, timeout=300)
        first_still_running = first.poll() is None
        first_output, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    second_output = second.stdout + second.stderr
    assert second.returncode != 0, second_output
    assert "Directory cannot be locked" in second_output
    assert first_still_running, "the second run was refused only after the first had finished"
    assert first.returncode == 0, first_output
    # the first run's outputs are complete and exactly those of an undisturbed run
    assert result_files(workdir) == result_files(small_run)
    assert list((workdir / "results").rglob("*.tmp")) == []
    dry_run = run_snakemake(workdir, "--dry-run")
    assert "Nothing to be done" in dry_run.stdout + dry_run.stderr
