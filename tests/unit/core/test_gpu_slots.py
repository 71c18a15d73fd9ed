"""GPU slots (sdcnn/core/gpu_slots.py): each job claims devices of its own, with stand-in
device lists (``CUDA_VISIBLE_DEVICES=0,1,2,3``) and a lock folder of the test's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdcnn.core import gpu_slots
from sdcnn.core.errors import StepError
from sdcnn.core.gpu_slots import (
    LOCK_DIR_VARIABLE,
    SHARE_VARIABLE,
    WAIT_VARIABLE,
    claim_gpus,
    driver_devices,
    parse_visible,
    visible_devices,
)
from tests.support.workspace import REPO

# a claimer: claims one GPU, prints what it got as JSON, then holds it until stdin closes
CLAIMER = """
import json, logging, os, sys
from sdcnn.core.gpu_slots import claim_gpus
logging.basicConfig(level=logging.INFO)
slots = claim_gpus(int(sys.argv[1]), job="test claimer", poll_s=0.05)
print(json.dumps({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "slots": None if slots is None else slots.record()}), flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize(
    "value, devices",
    [
        ("0,1,2,3", ["0", "1", "2", "3"]),
        ("2", ["2"]),
        (" 1, 3 ", ["1", "3"]),
        ("GPU-8a2f,GPU-77c1", ["GPU-8a2f", "GPU-77c1"]),
        ("MIG-GPU-8a2f/1/0", ["MIG-GPU-8a2f/1/0"]),
        ("", []),
        ("-1", []),
        ("0,-1,2", ["0"]),  # CUDA reads up to the first invalid entry
        ("0,,2", ["0"]),
    ],
)
def test_parse_visible(value: str, devices: list[str]) -> None:
    assert parse_visible(value) == devices


def test_visible_devices_reads_the_variable_when_set() -> None:
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_visible_devices_asks_the_driver_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_slots, "driver_devices", lambda: ["0", "1"])
    assert visible_devices({}) == ["0", "1"]


def test_driver_devices_from_proc(tmp_path: Path) -> None:
    for bus in ("0000:3b:00.0", "0000:5e:00.0", "0000:af:00.0"):
        (tmp_path / bus).mkdir()
    assert driver_devices(smi=None, proc=tmp_path) == ["0", "1", "2"]
    assert driver_devices(smi=None, proc=tmp_path / "missing") == []


def test_driver_devices_from_nvidia_smi(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    smi.chmod(0o755)
    assert driver_devices(smi=str(smi), proc=tmp_path / "missing") == ["0", "1"]
    smi.write_text("#!/bin/sh\nexit 9\n")  # a driver that does not answer: /proc
    (tmp_path / "proc" / "0000:3b:00.0").mkdir(parents=True)
    assert driver_devices(smi=str(smi), proc=tmp_path / "proc") == ["0"]


def slot_env(locks: Path, devices: str = "0,1,2,3", **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SLURM_JOB_ID", WAIT_VARIABLE, SHARE_VARIABLE)
    }
    env.update({"CUDA_VISIBLE_DEVICES": devices, LOCK_DIR_VARIABLE: str(locks), **extra})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_claimer(env: dict[str, str], count: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(count)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def claimed(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "no output"
    return json.loads(line)


def finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.communicate(timeout=30)  # closes stdin: the claimer exits


@pytest.fixture
def claimers() -> list[subprocess.Popen[str]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_concurrent_claimers_get_distinct_devices_and_the_fifth_waits(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    env = slot_env(tmp_path / "locks")
    claimers.extend(start_claimer(env) for _ in range(4))  # all at once
    got = [claimed(process) for process in claimers]
    assert sorted(entry["visible"] for entry in got) == ["0", "1", "2", "3"]
    assert all(entry["slots"]["visible"] == ["0", "1", "2", "3"] for entry in got)
    fifth = start_claimer(env)
    claimers.append(fifth)
    time.sleep(2)
    assert fifth.poll() is None  # still waiting: every device is held
    holder = next(p for p, entry in zip(claimers, got, strict=False) if entry["visible"] == "2")
    finish(holder)
    assert claimed(fifth)["visible"] == "2"  # the one that was freed


def test_a_killed_claimer_frees_its_device(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    env = slot_env(tmp_path / "locks", devices="5,7")
    claimers.extend(start_claimer(env) for _ in range(2))
    got = {claimed(process)["visible"]: process for process in claimers}
    assert set(got) == {"5", "7"}
    waiting = start_claimer(env)
    claimers.append(waiting)
    time.sleep(1)
    assert waiting.poll() is None
    got["7"].send_signal(signal.SIGKILL)  # no cleanup at all: the kernel drops the lock
    assert claimed(waiting)["visible"] == "7"


def test_the_waiter_names_the_holder_then_gives_up(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    locks = tmp_path / "locks"
    holder = start_claimer(slot_env(locks, devices="0"))
    claimers.append(holder)
    claimed(holder)
    waiter = subprocess.run(
        [sys.executable, "-c", CLAIMER, "1"],
        env=slot_env(locks, devices="0", **{WAIT_VARIABLE: "1"}),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert waiter.returncode != 0
    assert "waiting for 1 free GPU(s) of 0" in waiter.stderr
    assert f"GPU 0: pid {holder.pid} (" in waiter.stderr and "test claimer" in waiter.stderr
    assert "no GPU free for this job after 1 s" in waiter.stderr
    assert str(locks) in waiter.stderr and WAIT_VARIABLE in waiter.stderr


def test_an_unusable_lock_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    environ = {"CUDA_VISIBLE_DEVICES": "0", LOCK_DIR_VARIABLE: str(tmp_path / "file")}
    with pytest.raises(StepError, match="cannot use .*file as the GPU lock folder"):
        claim_gpus(1, environ=environ)


def test_two_gpus_for_one_job(tmp_path: Path, claimers: list[subprocess.Popen[str]]) -> None:
    env = slot_env(tmp_path / "locks", devices="0,1,2")
    first = start_claimer(env)
    claimers.append(first)
    assert claimed(first)["visible"] == "0"
    pair = start_claimer(env, count=2)
    claimers.append(pair)
    entry = claimed(pair)
    assert entry["visible"] == "1,2" and entry["slots"]["devices"] == ["1", "2"]


def test_two_jobs_a_gpu_when_asked(tmp_path: Path, claimers: list[subprocess.Popen[str]]) -> None:
    """SDCNN_JOBS_PER_GPU=2: two jobs a GPU, spread over the GPUs first; a fifth waits."""
    env = slot_env(tmp_path / "locks", devices="0,1", **{SHARE_VARIABLE: "2"})
    got = []
    for _ in range(4):  # one after the other, so the order is known
        claimers.append(start_claimer(env))
        got.append(claimed(claimers[-1])["visible"])
    assert got == ["0", "1", "0", "1"]
    fifth = subprocess.run(
        [sys.executable, "-c", CLAIMER, "1"],
        env={**env, WAIT_VARIABLE: "0.3"},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fifth.returncode != 0 and "no GPU free" in fifth.stderr
    names = sorted(path.name for path in (tmp_path / "locks").iterdir())
    assert names == ["gpu-0+1.lock", "gpu-0.lock", "gpu-1+1.lock", "gpu-1.lock"]


def test_claim_in_process_sets_the_variable(tmp_path: Path) -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb", LOCK_DIR_VARIABLE: str(tmp_path / "l")}
    slots = claim_gpus(1, environ=environ)
    assert slots is not None
    try:
        assert environ["CUDA_VISIBLE_DEVICES"] == "GPU-aa"
        assert slots.describe() == "CUDA_VISIBLE_DEVICES=GPU-aa (of GPU-aa,GPU-bb)"
        assert "CUDA_DEVICE_ORDER" not in environ  # the run named its devices itself
        lock = tmp_path / "l" / "gpu-GPU-aa.lock"
        assert f"pid {os.getpid()} (" in lock.read_text()
        assert (tmp_path / "l").stat().st_mode & 0o7777 == 0o1777
        assert lock.stat().st_mode & 0o777 == 0o666
    finally:
        slots.release()


def test_another_users_unwritable_lock_file_still_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock file this user may not write is locked read-only (flock needs no write)."""
    lock = tmp_path / "gpu-0.lock"
    lock.write_text("")
    real_open = os.open

    def no_write(path: str, flags: int, *mode: int) -> int:
        if flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *mode)

    monkeypatch.setattr(os, "open", no_write)
    fd = gpu_slots.try_lock(lock, "holder")
    monkeypatch.undo()
    assert fd is not None
    try:
        assert gpu_slots.try_lock(lock, "another") is None  # held
        assert lock.read_text() == ""  # nothing written
    finally:
        os.close(fd)


def test_the_drivers_devices_in_pci_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_slots, "driver_devices", lambda: ["0", "1"])
    environ = {LOCK_DIR_VARIABLE: str(tmp_path)}
    slots = claim_gpus(1, environ=environ)
    assert slots is not None
    slots.release()
    assert environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # nvidia-smi's numbering


@pytest.mark.parametrize(
    "count, environ",
    [
        (0, {"CUDA_VISIBLE_DEVICES": "0,1"}),  # no GPU requested
        (1, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "42"}),  # SLURM assigns them
        (1, {"CUDA_VISIBLE_DEVICES": ""}),  # none visible: the step falls back or stops
    ],
)
def test_no_claim(
    count: int, environ: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {**environ, LOCK_DIR_VARIABLE: str(tmp_path / "locks")}
    before = dict(environ)
    with caplog.at_level("INFO", logger="sdcnn.core.gpu_slots"):
        assert claim_gpus(count, environ=environ) is None
    assert environ == before and not (tmp_path / "locks").exists()
    if "SLURM_JOB_ID" in environ:
        assert "SLURM assigns this job's GPUs" in caplog.text


def test_more_gpus_requested_than_visible_claims_them_all(tmp_path: Path) -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "3", LOCK_DIR_VARIABLE: str(tmp_path)}
    slots = claim_gpus(2, environ=environ)
    assert slots is not None and slots.devices == ("3",)
    slots.release()


def test_refused_once_cuda_is_initialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = SimpleNamespace(cuda=SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", started)
    environ = {"CUDA_VISIBLE_DEVICES": "0,1", LOCK_DIR_VARIABLE: str(tmp_path)}
    with pytest.raises(StepError, match="CUDA is already initialised in this process"):
        claim_gpus(1, environ=environ)
    assert environ["CUDA_VISIBLE_DEVICES"] == "0,1"


@pytest.mark.parametrize(
    "variable, value, message",
    [(WAIT_VARIABLE, "x", "must be a number"), (SHARE_VARIABLE, "0", "must be a whole number")],
)
def test_bad_settings_are_errors(tmp_path: Path, variable: str, value: str, message: str) -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "0", LOCK_DIR_VARIABLE: str(tmp_path), variable: value}
    with pytest.raises(StepError, match=f"{variable} {message}"):
        claim_gpus(1, environ=environ)
