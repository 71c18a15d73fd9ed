"""Stale Snakemake locks are removed only when no Snakemake process works in the folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdcnn.locks import PROC, clear_stale_locks, snakemake_processes_in

pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="needs /proc (Linux)")


def make_lock(folder: Path) -> Path:
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    lock = locks / "0.input.lock"
    lock.write_text("results/x\n")
    return lock


def test_lock_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    assert clear_stale_locks(tmp_path) == [lock]
    assert not lock.exists()


def test_lock_of_a_live_run_is_kept(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    # a live process in that folder whose command line says snakemake
    live = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=tmp_path
    )
    try:
        assert snakemake_processes_in(tmp_path) == [live.pid]
        assert clear_stale_locks(tmp_path) == []
        assert lock.exists()
    finally:
        live.kill()
        live.wait()
    assert clear_stale_locks(tmp_path) == [lock]


def test_process_elsewhere_does_not_count(tmp_path: Path) -> None:
    lock = make_lock(tmp_path / "a")
    (tmp_path / "b").mkdir()
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=tmp_path / "b"
    )
    try:
        assert clear_stale_locks(tmp_path / "a") == [lock]
    finally:
        other.kill()
        other.wait()
