"""GPU slots: which of a workstation's GPUs each job runs on.

Snakemake counts a ``gpu`` resource but assigns no device, so locally every job would
use the first GPU CUDA shows.  A job claims its GPUs here before torch starts CUDA: a
non-blocking ``flock`` on one lock file per device, in a folder every run on the machine
shares, held by an open file descriptor until the process ends (the kernel releases it
then, even after ``kill -9``); ``CUDA_VISIBLE_DEVICES`` then names the claimed devices
only.  Under SLURM, which assigns each job its devices, nothing is claimed.
"""

from __future__ import annotations

import fcntl
import getpass
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sdcnn.core.errors import CONSOLE_LOGGER, StepError

log = logging.getLogger(__name__)
console_log = logging.getLogger(CONSOLE_LOGGER)

VISIBLE = "CUDA_VISIBLE_DEVICES"
LOCK_DIR_VARIABLE = "SDCNN_GPU_SLOTS_DIR"  # the lock folder, where not the default
WAIT_VARIABLE = "SDCNN_GPU_SLOTS_WAIT"  # seconds a job waits for a free GPU at most
SHARE_VARIABLE = "SDCNN_JOBS_PER_GPU"  # jobs that may share one GPU (if they fit), 1 unless set
# in /tmp, not $TMPDIR or $XDG_RUNTIME_DIR: every user's runs must find the same locks
DEFAULT_LOCK_DIR = Path("/tmp/sdcnn-gpu-slots")
DEFAULT_WAIT_S = 6 * 3600.0  # a long generate job's time: jobs queue behind each other
POLL_S = 1.0
REPORT_EVERY_S = 300.0  # a waiting job says who it waits for this often (and at first)
CLUSTER_VARIABLE = "SLURM_JOB_ID"
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")  # one entry per GPU, by PCI bus id

_held: list[GpuSlots] = []  # the claims of this process: their descriptors stay open


@dataclass
class GpuSlots:
    """The GPUs a job claimed: ``devices`` (now its ``CUDA_VISIBLE_DEVICES``, ids or UUIDs
    as the run named them) of the run's ``visible`` ones, locked in ``lock_dir``."""

    devices: tuple[str, ...]
    visible: tuple[str, ...]
    lock_dir: Path
    fds: list[int] = field(default_factory=list, repr=False)

    def describe(self) -> str:
        """``CUDA_VISIBLE_DEVICES=2 (of 0,1,2,3)``."""
        return f"{VISIBLE}={','.join(self.devices)} (of {','.join(self.visible)})"

    def record(self) -> dict[str, object]:
        """JSON-ready, for a job's provenance."""
        return {
            "devices": list(self.devices),
            "visible": list(self.visible),
            "lock_dir": str(self.lock_dir),
        }

    def release(self) -> None:
        """Give the devices back now (a process's end does it too)."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        if self in _held:
            _held.remove(self)


def parse_visible(value: str) -> list[str]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value names, as given (ids, ``GPU-`` or
    ``MIG-`` UUIDs); as CUDA reads it, the list ends at an empty or negative entry, so
    ``""`` and ``"-1"`` name none."""
    devices: list[str] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def driver_devices(
    smi: str | None = "nvidia-smi", proc: Path = NVIDIA_PROC, timeout_s: float = 20.0
) -> list[str]:
    """The indices of the GPUs the NVIDIA driver sees (in PCI bus order, as nvidia-smi
    numbers them), found without initialising CUDA here: ``nvidia-smi``'s list, else the
    entries of ``/proc/driver/nvidia/gpus``; none without a driver."""
    command = shutil.which(smi) if smi else None
    if command:
        try:
            listed = subprocess.run(
                [command, "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=True,
            )
            return [line.strip() for line in listed.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            log.info("nvidia-smi did not list the GPUs: reading %s", proc)
    try:
        return [str(index) for index in range(len(list(proc.iterdir())))]
    except OSError:
        return []


def visible_devices(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The devices the run was started with: ``CUDA_VISIBLE_DEVICES`` where it is set,
    else every GPU the driver sees (``driver_devices``)."""
    if VISIBLE in environ:
        return parse_visible(environ[VISIBLE])
    return driver_devices()


def lock_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """The machine's lock folder (``SDCNN_GPU_SLOTS_DIR`` or ``/tmp/sdcnn-gpu-slots``);
    where missing, made writable by every user, as /tmp is."""
    folder = Path(environ.get(LOCK_DIR_VARIABLE) or DEFAULT_LOCK_DIR)
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            if folder.stat().st_uid == os.getuid():
                folder.chmod(0o1777)  # past the umask
    except OSError as error:
        raise StepError(
            f"cannot use {folder} as the GPU lock folder ({error}); set {LOCK_DIR_VARIABLE} "
            "to a folder every run on this machine can write"
        ) from None
    return folder


def lock_path(folder: Path, device: str, share: int = 0) -> Path:
    """The lock file of one device's slot ``share`` (0, or 1 and up where jobs share a
    GPU): ``gpu-<id>.lock``, ``gpu-<id>+1.lock``, ..."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", device) + (f"+{share}" if share else "")
    return folder / f"gpu-{name}.lock"


def open_lock(path: Path) -> tuple[int, bool]:
    """A descriptor of the lock file ``path``, made where missing and left writable by
    every user; and whether this process may write it (another user's file, left
    unwritable, is locked read-only: ``flock`` needs no write access)."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, flags | os.O_RDONLY), False
    if os.fstat(fd).st_uid == os.getuid():
        os.fchmod(fd, 0o666)  # past the umask: other users' runs open it too
    return fd, True


def try_lock(path: Path, holder: str) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, with ``holder`` written
    in the file where it may be; None when another process holds it."""
    fd, writable = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if writable:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    return fd


def holder_text(job: str) -> str:
    """Who holds a lock: the process, its user and host, the job."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = str(os.getuid())
    return f"pid {os.getpid()} ({user}@{socket.gethostname()}, {job or 'a job'})"


def holders(folder: Path, devices: Sequence[str], shares: int = 1) -> str:
    """Who holds each device's locks, as their lock files say."""
    said = []
    for device in devices:
        for share in range(shares):
            try:
                text = lock_path(folder, device, share).read_text(encoding="utf-8").strip()
            except OSError:
                text = ""
            said.append(f"GPU {device}: {text or 'held'}")
    return "; ".join(said)


def try_claim(
    folder: Path, devices: Sequence[str], count: int, holder: str, shares: int = 1
) -> dict[str, int]:
    """``count`` of ``devices``, the first free ones in order (each device's first slot,
    then its second, ... of ``shares``), each with the descriptor that locks it; none
    (and nothing held) when fewer are free."""
    claimed: dict[str, int] = {}
    for share in range(shares):
        for device in devices:
            if device in claimed:
                continue
            fd = try_lock(lock_path(folder, device, share), holder)
            if fd is not None:
                claimed[device] = fd
                if len(claimed) == count:
                    return dict(sorted(claimed.items(), key=lambda i: devices.index(i[0])))
    for fd in claimed.values():
        os.close(fd)
    return {}


def refuse_if_cuda_started() -> None:
    """A ``StepError`` when torch has initialised CUDA in this process: a
    ``CUDA_VISIBLE_DEVICES`` set now would not apply.  (``torch.cuda.is_available()``
    starts the driver without that flag: claim before anything asks torch about CUDA.)"""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        raise StepError(
            "CUDA is already initialised in this process, so a GPU slot claimed now would "
            f"not apply ({VISIBLE} is read once, when CUDA starts): claim the GPU before "
            "anything uses torch.cuda"
        )


def wait_bound(environ: Mapping[str, str]) -> float:
    """Seconds a job waits for a free GPU at most: ``SDCNN_GPU_SLOTS_WAIT``, else 6 h."""
    value = environ.get(WAIT_VARIABLE)
    if not value:
        return DEFAULT_WAIT_S
    try:
        return float(value)
    except ValueError:
        raise StepError(f"{WAIT_VARIABLE} must be a number of seconds, not {value!r}") from None


def jobs_per_gpu(environ: Mapping[str, str]) -> int:
    """Jobs that may run on one GPU at once: ``SDCNN_JOBS_PER_GPU``, else 1."""
    value = environ.get(SHARE_VARIABLE) or "1"
    if not value.isdigit() or int(value) < 1:
        raise StepError(f"{SHARE_VARIABLE} must be a whole number from 1, not {value!r}")
    return int(value)


def claim_gpus(
    count: int,
    *,
    job: str = "",
    environ: MutableMapping[str, str] = os.environ,
    poll_s: float = POLL_S,
) -> GpuSlots | None:
    """Claim ``count`` of the run's GPUs for this process and set ``CUDA_VISIBLE_DEVICES``
    to them; call before torch initialises CUDA.  Waits while fewer are free (other jobs
    hold them), saying for whom, up to ``SDCNN_GPU_SLOTS_WAIT`` seconds, then a
    ``StepError``.  None, claiming nothing: no GPU requested, a SLURM job, or no GPU
    visible (the step then falls back or stops, ``gpu_fallback``)."""
    if count <= 0:
        return None
    if CLUSTER_VARIABLE in environ:
        log.info(
            "GPU slot: none claimed, SLURM assigns this job's GPUs (%s=%s)",
            VISIBLE,
            environ.get(VISIBLE, "unset"),
        )
        return None
    visible = visible_devices(environ)
    if not visible:
        log.info("GPU slot: none claimed, no GPU visible (%s=%s)", VISIBLE, environ.get(VISIBLE))
        return None
    if count > len(visible):
        log.warning("%d GPUs requested but %d visible: claiming them all", count, len(visible))
        count = len(visible)
    refuse_if_cuda_started()
    folder = lock_folder(environ)
    claimed = wait_for(
        folder,
        visible,
        count,
        holder_text(job),
        bound_s=wait_bound(environ),
        poll_s=poll_s,
        shares=jobs_per_gpu(environ),
    )
    slots = GpuSlots(tuple(claimed), tuple(visible), folder, list(claimed.values()))
    _held.append(slots)
    if VISIBLE not in environ:
        # the driver's (nvidia-smi's) indices are in PCI bus order; CUDA's default is not
        environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    environ[VISIBLE] = ",".join(slots.devices)
    log.info("GPU slot: %s", slots.describe())
    return slots


def wait_for(
    folder: Path,
    visible: Sequence[str],
    count: int,
    holder: str,
    *,
    bound_s: float,
    poll_s: float,
    shares: int = 1,
) -> dict[str, int]:
    """``count`` free devices with their locks' descriptors (``try_claim``, ``shares``
    jobs a GPU), tried every ``poll_s`` seconds for ``bound_s`` at most."""
    started = time.monotonic()
    reported = None
    while True:
        try:
            claimed = try_claim(folder, visible, count, holder, shares)
        except OSError as error:
            raise StepError(
                f"cannot lock a GPU in {folder} ({error}); set {LOCK_DIR_VARIABLE} to a "
                "folder every run on this machine can write"
            ) from None
        if claimed:
            if reported is not None:
                log.info("GPU free after %.0f s of waiting", time.monotonic() - started)
            return claimed
        waited = time.monotonic() - started
        who = holders(folder, visible, shares)
        if waited >= bound_s:
            raise StepError(
                f"no GPU free for this job after {waited:.0f} s: it needs {count} of "
                f"{','.join(visible)} ({VISIBLE}), all held ({who}; lock folder {folder}, "
                f"{LOCK_DIR_VARIABLE}); wait longer ({WAIT_VARIABLE}, seconds) or run fewer "
                f"GPU jobs at once (--resources gpu=; {SHARE_VARIABLE} per GPU)"
            )
        if reported is None or time.monotonic() - reported >= REPORT_EVERY_S:
            (console_log if reported is None else log).info(
                "waiting for %d free GPU(s) of %s (lock folder %s): %s",
                count,
                ",".join(visible),
                folder,
                who,
            )
            reported = time.monotonic()
        time.sleep(poll_s)
