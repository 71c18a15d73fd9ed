"""A lock is removed only when its holder is known to be dead; parsing never touches it.

Unit tests of sdcnn/locks.py, and the case that broke runs before: a long run in progress
while the workflow is parsed on "another host" (a fresh PID namespace, where the run's
processes are invisible, as on a SLURM node or another login node).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_workflow, result_files, run_snakemake
from sdcnn.locks import HOLDER_FILE, LOCKS_DIR, PROC, Holder, clear_stale_locks, this_process

pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="needs /proc (Linux)")


def make_lock(folder: Path) -> Path:
    locks = folder / LOCKS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    lock = locks / "0.input.lock"
    lock.write_text("results/x\n")
    return lock


def record(folder: Path, holder: Holder) -> None:
    (folder / HOLDER_FILE).write_text(json.dumps(dataclasses.asdict(holder)))


def ended_process() -> Holder:
    """A holder that was this host's, in this namespace, and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"])
    child.wait()
    here = this_process()
    assert here is not None
    return dataclasses.replace(here, pid=child.pid)


def test_lock_of_a_dead_holder_is_removed(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    record(tmp_path, ended_process())
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [lock] and not lock.exists(), message
    assert "has ended" in message and not (tmp_path / HOLDER_FILE).exists()


def test_lock_of_a_live_holder_is_kept(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = this_process()
        assert here is not None
        ticks = int(Path(f"/proc/{live.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        record(tmp_path, dataclasses.replace(here, pid=live.pid, start_ticks=ticks))
        removed, message = clear_stale_locks(tmp_path)
        assert removed == [] and lock.exists() and "may still be running" in message
    finally:
        live.kill()
        live.wait()
    assert clear_stale_locks(tmp_path)[0] == [lock]  # and once it has ended, it goes


def test_a_reused_process_id_counts_as_ended(tmp_path: Path) -> None:
    here = this_process()
    assert here is not None
    lock = make_lock(tmp_path)
    record(tmp_path, dataclasses.replace(here, start_ticks=here.start_ticks - 1))  # us, older
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [lock] and "now belongs to another process" in message


@pytest.mark.parametrize(
    "elsewhere",
    [{"host": "another-node"}, {"boot_id": "another-boot"}, {"pid_namespace": "pid:[1]"}],
)
def test_a_holder_elsewhere_is_never_judged(tmp_path: Path, elsewhere: dict) -> None:
    lock = make_lock(tmp_path)
    record(tmp_path, dataclasses.replace(ended_process(), **elsewhere))
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [] and lock.exists() and "snakemake --unlock" in message


def test_locks_without_a_recorded_holder_are_left(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [] and lock.exists() and "recorded no holder" in message


def test_nothing_at_parse_time() -> None:
    """No rule file and no Snakefile removes locks while it is parsed."""
    from conftest import REPO

    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        assert "clear_stale_locks" not in text, f"{path.name} clears locks at parse time"


# ---- the same folder seen from "another host": a fresh PID namespace


def unshare_reason() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(
        ["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"unshare -p is not allowed here ({probe.stderr.strip()})"
    return None


def on_another_host(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>`` in the workflow folder from a fresh PID namespace, as a
    SLURM job step runs: a job script, started elsewhere, that cds there (no exec)."""
    script = workdir.parent / "jobscript.sh"
    command = " ".join([sys.executable, "-m", *args])
    script.write_text(f"#!/bin/sh\ncd {workdir}\n{command}\nexit $?\n")
    return subprocess.run(
        ["unshare", "-p", "-f", "--mount-proc", "sh", str(script)],
        cwd=workdir.parent.parent, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip


LONG_CONFIG = {
    "prompts": {"city": {"text": "A futuristic city at sunset", "n_images": 3}},
    # slow enough (seconds an image) to be seen from outside while it runs
    "generation": {"steps": 20, "height": 256, "width": 256},
    "preprocess": {"size": 32},
    "classifier": {"labels": ["cat", "dog"]},
    "store": {"enabled": False},
}


@pytest.mark.pipeline
def test_another_host_leaves_a_running_lock_alone(tmp_path: Path) -> None:
    reason = unshare_reason()
    if reason:
        pytest.skip(f"no PID namespace to stand in for another host: {reason}")
    workdir = copy_workflow(tmp_path / "a" / "workflow", LONG_CONFIG)
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2"], cwd=workdir,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (workdir / HOLDER_FILE).exists():  # the run is executing, its lock taken
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the run never started executing"
            time.sleep(0.1)
        locks = sorted(p.name for p in (workdir / LOCKS_DIR).glob("*.lock"))
        assert locks, "the running workflow holds no lock"

        dry = on_another_host(workdir, "snakemake", "-n", "--cores", "2")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        cleaner = on_another_host(workdir, "sdcnn.locks")
        assert "left alone" in cleaner.stdout, cleaner.stdout + cleaner.stderr
        second = on_another_host(workdir, "snakemake", "--cores", "2")
        assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
        assert sorted(p.name for p in (workdir / LOCKS_DIR).glob("*.lock")) == locks
        assert first.poll() is None, "the first run ended while it was looked at"
    finally:
        output, _ = first.communicate(timeout=900)
    assert first.returncode == 0, output[-3000:]
    images = sorted(p.name for p in (workdir / "results" / "images" / "city").glob("*.png"))
    assert images == ["city_000.png", "city_001.png", "city_002.png"]
    assert not (workdir / HOLDER_FILE).exists() and not list((workdir / LOCKS_DIR).glob("*"))
    assert "Nothing to be done" in run_snakemake(workdir, "-n").stdout
    assert any(name.startswith("predictions/") for name in result_files(workdir))
