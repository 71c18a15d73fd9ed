"""A lock is removed only when its own holder is known to be dead; parsing never touches it.

Unit tests of sdcnn/workflow/locks.py, and the cases that broke runs before: a long run in progress
while the workflow is parsed on "another host" (a fresh PID namespace, where the run's
processes are invisible, as on a SLURM node or another login node); two runs in one
folder, one of them killed (issue 19: one holder record per folder named the killed one,
and `python -m sdcnn.workflow.locks` removed the live run's lock with it); and the workflow used as
a Snakemake module, whose `onstart:` Snakemake ignores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdcnn.workflow.locks import (
    LOCKS_DIR,
    PROC,
    RECORD_SUFFIX,
    Holder,
    clear_stale_locks,
    record_holder,
    record_path,
    this_process,
)
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="needs /proc (Linux)")


def make_lock(folder: Path, name: str = "0.input.lock") -> Path:
    locks = folder / LOCKS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    lock = locks / name
    lock.write_text("results/x\n")
    return lock


def record(lock: Path, holder: Holder) -> None:
    record_holder([lock], holder)


def ended_process() -> Holder:
    """A holder that was this host's, in this namespace, and has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"])
    child.wait()
    here = this_process()
    assert here is not None
    return dataclasses.replace(here, pid=child.pid)


def live_process() -> tuple[subprocess.Popen, Holder]:
    """A process of this host, in this namespace, that runs until killed; as a holder."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    here = this_process()
    assert here is not None
    ticks = int(Path(f"/proc/{live.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return live, dataclasses.replace(here, pid=live.pid, start_ticks=ticks)


def test_lock_of_a_dead_holder_is_removed(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    record(lock, ended_process())
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [lock] and not lock.exists(), message
    assert "has ended" in message and not record_path(lock).exists()


def test_lock_of_a_live_holder_is_kept(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    live, holder = live_process()
    try:
        record(lock, holder)
        removed, message = clear_stale_locks(tmp_path)
        assert removed == [] and lock.exists() and "may still be running" in message
    finally:
        live.kill()
        live.wait()
    assert clear_stale_locks(tmp_path)[0] == [lock]  # and once it has ended, it goes


def test_each_lock_is_judged_on_its_own_holder(tmp_path: Path) -> None:
    """Two runs' locks in one folder: only the dead run's go, whatever was recorded last."""
    live_locks = [make_lock(tmp_path, f"0.{kind}.lock") for kind in ("input", "output")]
    dead_locks = [make_lock(tmp_path, f"1.{kind}.lock") for kind in ("input", "output")]
    unrecorded = make_lock(tmp_path, "2.output.lock")
    live, holder = live_process()
    try:
        record_holder(live_locks, holder)
        record_holder(dead_locks, ended_process())  # the later record
        removed, message = clear_stale_locks(tmp_path)
    finally:
        live.kill()
        live.wait()
    assert removed == dead_locks and not any(lock.exists() for lock in dead_locks), message
    assert all(lock.exists() and record_path(lock).exists() for lock in live_locks)
    assert unrecorded.exists() and "recorded no holder" in message
    assert "may still be running" in message and "has ended" in message


def test_a_record_of_an_earlier_lock_file_does_not_count(tmp_path: Path) -> None:
    """A new run that takes a killed run's lock number is not judged on the old record."""
    lock = make_lock(tmp_path)
    record(lock, ended_process())
    lock.unlink()
    time.sleep(0.05)  # another mtime, even where the inode is reused
    lock = make_lock(tmp_path)  # the next run's lock, before it records its holder
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [] and lock.exists() and "recorded no holder" in message


def test_a_reused_process_id_counts_as_ended(tmp_path: Path) -> None:
    here = this_process()
    assert here is not None
    lock = make_lock(tmp_path)
    record(lock, dataclasses.replace(here, start_ticks=here.start_ticks - 1))  # us, older
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [lock] and "now belongs to another process" in message


@pytest.mark.parametrize(
    "elsewhere",
    [{"host": "another-node"}, {"boot_id": "another-boot"}, {"pid_namespace": "pid:[1]"}],
)
def test_a_holder_elsewhere_is_never_judged(tmp_path: Path, elsewhere: dict) -> None:
    lock = make_lock(tmp_path)
    record(lock, dataclasses.replace(ended_process(), **elsewhere))
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [] and lock.exists() and "snakemake --unlock" in message


def test_locks_without_a_recorded_holder_are_left(tmp_path: Path) -> None:
    lock = make_lock(tmp_path)
    (tmp_path / ".snakemake" / "sdcnn-lock-holder.json").write_text(
        json.dumps(dataclasses.asdict(ended_process()))
    )  # the one record per folder of older versions: not a record of this lock
    removed, message = clear_stale_locks(tmp_path)
    assert removed == [] and lock.exists() and "recorded no holder" in message


def test_nothing_at_parse_time() -> None:
    """No rule file and no Snakefile removes locks while it is parsed."""
    from tests.support.workspace import REPO

    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        assert "clear_stale_locks" not in text, f"{path.name} clears locks at parse time"


def lock_names(workdir: Path) -> set[str]:
    return {path.name for path in (workdir / LOCKS_DIR).glob("*.lock")}


def holder_records(workdir: Path) -> list[Path]:
    return sorted((workdir / LOCKS_DIR).glob(f"*{RECORD_SUFFIX}"))


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
        cwd=workdir.parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


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
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not holder_records(workdir):  # the run is executing, its lock taken
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the run never started executing"
            time.sleep(0.1)
        locks = sorted(p.name for p in (workdir / LOCKS_DIR).glob("*.lock"))
        assert locks, "the running workflow holds no lock"

        dry = on_another_host(workdir, "snakemake", "-n", "--cores", "2")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        cleaner = on_another_host(workdir, "sdcnn.workflow.locks")
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
    assert not list((workdir / LOCKS_DIR).glob("*"))  # the locks and their records
    assert "Nothing to be done" in run_snakemake(workdir, "-n").stdout
    assert any(name.startswith("predictions/") for name in result_files(workdir))


# ---- two runs in one folder (issue 19): a killed run's locks go, the live run's stay

TWO_RUNS_CONFIG = {
    "prompts": {
        "city": {"text": "A futuristic city at sunset", "n_images": 1},
        "harbor": {"text": "A quiet fishing harbor at dawn", "n_images": 1},
    },
    "generation": {"steps": 2, "height": 64, "width": 64},
    "preprocess": {"size": 32},
    "classifier": {"labels": ["cat", "dog"]},
    "store": {"enabled": False},
}


def start_run(workdir: Path, target: str) -> subprocess.Popen[str]:
    """``snakemake <target>`` in ``workdir``, in a process group of its own (it and its jobs
    are stopped, resumed or killed together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def stopped_once_executing(run: subprocess.Popen[str], job_log: Path) -> None:
    """Wait until ``run`` executes its job (which writes ``job_log``: its hooks have run,
    its locks are taken), then stop it there: alive, and busy for as long as the test
    needs, whatever the machine's speed."""
    deadline = time.monotonic() + 300
    while not job_log.exists():
        assert run.poll() is None, run.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never started its job"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGSTOP)


def run_cleaner(workdir: Path) -> str:
    """What `make run` runs first."""
    cleaner = subprocess.run(
        [sys.executable, "-m", "sdcnn.workflow.locks"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cleaner.returncode == 0, cleaner.stdout + cleaner.stderr
    return cleaner.stdout


@pytest.mark.pipeline
def test_a_killed_run_beside_a_live_one_loses_only_its_own_locks(tmp_path: Path) -> None:
    """Run A (target city) executes, run B (harbor) starts after it (so B's holder is the
    one recorded last); B is killed with -9; `python -m sdcnn.workflow.locks` removes B's locks
    only; a third run of A's target is refused while A lives; A finishes."""
    workdir = copy_workflow(tmp_path / "workflow", TWO_RUNS_CONFIG)
    logs = workdir / "results" / "logs" / "generate"
    first = start_run(workdir, "results/images/city")
    second = None
    try:
        stopped_once_executing(first, logs / "city.log")
        first_locks = lock_names(workdir)
        assert first_locks, "the first run holds no lock"
        second = start_run(workdir, "results/images/harbor")
        stopped_once_executing(second, logs / "harbor.log")
        second_locks = lock_names(workdir) - first_locks
        assert second_locks, "the second run holds no lock of its own"
        os.killpg(second.pid, signal.SIGKILL)  # snakemake and its job: kill -9, no cleanup
        second.wait()
        assert lock_names(workdir) == first_locks | second_locks

        message = run_cleaner(workdir)
        assert lock_names(workdir) == first_locks, message  # the live run's locks: kept
        assert "removed" in message and "has ended" in message, message
        assert "may still be running" in message, message
        assert {path.name for path in holder_records(workdir)} == {
            name + RECORD_SUFFIX for name in first_locks
        }
        third = run_snakemake(workdir, "results/images/city", check=False)
        assert third.returncode != 0 and "cannot be locked" in third.stdout + third.stderr
        assert first.poll() is None, "the first run ended while it was looked at"
    finally:
        if second is not None and second.poll() is None:  # the test failed before the kill
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGCONT)
        output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output[-3000:]
    images = workdir / "results" / "images"
    assert [p.name for p in (images / "city").glob("*.png")] == ["city_000.png"]
    assert not (images / "harbor").exists()  # the killed run's output was never finished
    assert not list((workdir / LOCKS_DIR).glob("*"))
    assert run_cleaner(workdir) == ""  # nothing left to say: no lock


# ---- the workflow as a Snakemake module of another workflow

HOST_SNAKEFILE = """\
configfile: "workflow/config/config.yaml"


module sdcnn:
    snakefile:
        "workflow/Snakefile"
    config:
        config


use rule * from sdcnn


rule host_job:
    output:
        "seen-by-job.txt",
    shell:
        "ls .snakemake/locks > {output}"


onstart:
    shell("ls .snakemake/locks > seen-by-host-onstart.txt")


onsuccess:
    shell("ls .snakemake/locks > seen-by-host-onsuccess.txt")
"""


@pytest.mark.pipeline
def test_a_module_run_records_its_holder_and_keeps_the_hosts_handlers(tmp_path: Path) -> None:
    """Snakemake runs no `onstart:` of a module's Snakefile; the records are made anyway,
    before the host's own handlers (defined after `use rule`), which still run."""
    host = tmp_path / "host"
    copy_workflow(host / "workflow", TWO_RUNS_CONFIG)
    (host / "Snakefile").write_text(HOST_SNAKEFILE, encoding="utf-8")
    run_snakemake(host, "seen-by-job.txt")

    def seen(name: str) -> list[str]:
        return (host / name).read_text(encoding="utf-8").split()

    during = seen("seen-by-job.txt")
    locks = [name for name in during if name.endswith(".lock")]
    assert locks and sorted(during) == sorted(locks + [n + RECORD_SUFFIX for n in locks])
    assert seen("seen-by-host-onstart.txt") == during  # the host's handler ran, after ours
    assert seen("seen-by-host-onsuccess.txt") == locks  # ours ran first: the records went
    assert not list((host / LOCKS_DIR).glob("*"))
