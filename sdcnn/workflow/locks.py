"""Snakemake's locks of a killed run: removed only when their holder is known to be dead.

A run killed with ``kill -9`` (or the OOM killer, or a lost SSH session) leaves its pair of
lock files (``.snakemake/locks/<n>.input.lock``, ``<n>.output.lock``) behind, and every
later run that touches those files stops with "Directory cannot be locked".

- ``install_hooks``, called at parse time, registers handlers on the workflow object (a
  module's ``onstart:`` would be ignored); nothing is written while parsing.  When the run
  starts executing (main process only, never in dry runs or cluster jobs), the handler
  records who holds each of its own lock files (host, boot, PID namespace, process id and
  start time, the lock file's identity) in ``.snakemake/locks/<lock>.sdcnn-holder.json``;
  ``onsuccess``/``onerror`` remove those records.
- ``python -m sdcnn.workflow.locks`` (``make run`` calls it before Snakemake) removes a lock
  file only when its record names a process on this host, boot and PID namespace that has
  exited (a reused process id counts as gone: its start time differs).  Every other
  lock file is left, with the reason; ``snakemake --unlock`` is the way out once no run is
  left.

Snakemake (9.27) removes ``.snakemake/locks`` as a whole when a run ends normally, so a
run that ends beside another also drops the other's locks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sdcnn.core.fileio import write_json_atomic

log = logging.getLogger(__name__)

PROC = Path("/proc")
LOCKS_DIR = Path(".snakemake") / "locks"
RECORD_SUFFIX = ".sdcnn-holder.json"  # <lock>.sdcnn-holder.json: not a lock to Snakemake


@dataclass(frozen=True)
class Holder:
    """Who holds a lock file: enough to tell, later, that it is gone."""

    host: str
    boot_id: str  # a reboot ends every process, and reuses process ids
    pid_namespace: str  # another namespace is another "host": its processes are invisible
    pid: int
    start_ticks: int  # the process's start time: tells a reused process id apart

    @property
    def where(self) -> str:
        return f"process {self.pid} on {self.host}"


@dataclass(frozen=True)
class LockId:
    """Which lock file a record is about: a later lock file of the same name is another."""

    inode: int
    mtime_ns: int


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def start_ticks(pid: int, proc: Path = PROC) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), None if there is none."""
    stat = _read(proc / str(pid) / "stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has ended; only its entry is left
        return None
    return int(fields[19])


def this_process(proc: Path = PROC) -> Holder | None:
    """This process as a holder; None where /proc cannot tell (not Linux)."""
    pid = os.getpid()
    ticks = start_ticks(pid, proc)
    boot_id = _read(proc / "sys" / "kernel" / "random" / "boot_id")
    try:
        namespace = os.readlink(proc / "self" / "ns" / "pid")
    except OSError:
        namespace = None
    if ticks is None or boot_id is None or namespace is None:
        return None
    return Holder(socket.gethostname(), boot_id, namespace, pid, ticks)


def record_path(lock: Path) -> Path:
    """Where the holder of ``lock`` is recorded: beside it, in Snakemake's lock folder."""
    return lock.with_name(lock.name + RECORD_SUFFIX)


def lock_id(lock: Path) -> LockId | None:
    """The identity of the lock file ``lock``; None if there is none."""
    try:
        status = lock.stat()
    except OSError:
        return None
    return LockId(status.st_ino, status.st_mtime_ns)


def record_holder(locks: Iterable[Path], holder: Holder | None = None) -> None:
    """``onstart``: ``holder`` (default: this process) holds each of the lock files ``locks``."""
    holder = holder or this_process()
    if holder is None:
        return
    for lock in locks:
        identity = lock_id(lock)
        if identity is not None:
            write_json_atomic(record_path(lock), {**asdict(holder), "lock": asdict(identity)})


def forget_holder(locks: Iterable[Path]) -> None:
    """``onsuccess``/``onerror``: the run ends and releases its lock files ``locks``."""
    for lock in locks:
        record_path(lock).unlink(missing_ok=True)


def read_holder(lock: Path) -> Holder | None:
    """The recorded holder of the lock file ``lock``; None without a record of this very
    file (none, unreadable, or written for an earlier lock file of the same name)."""
    try:
        document = json.loads(record_path(lock).read_text(encoding="utf-8"))
        recorded = LockId(**document.pop("lock"))
        holder = Holder(**document)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return holder if recorded == lock_id(lock) else None


def holder_is_gone(holder: Holder, here: Holder | None, proc: Path = PROC) -> str | None:
    """Why ``holder`` is known to have ended, or None when that cannot be known."""
    if here is None:
        return None
    same_machine = (holder.host, holder.boot_id) == (here.host, here.boot_id)
    if not same_machine or holder.pid_namespace != here.pid_namespace:
        return None
    ticks = start_ticks(holder.pid, proc)
    if ticks is None:
        return f"{holder.where} has ended"
    if ticks != holder.start_ticks:
        return f"{holder.where} has ended (its process id now belongs to another process)"
    return None


NO_RECORD = (
    "recorded no holder (its run may still be building its DAG, or run with an older "
    "version): left alone; if no Snakemake works in this folder on any machine, remove "
    "them with `snakemake --unlock`"
)


def held_by(holder: Holder) -> str:
    return (
        f"held by {holder.where}, which may still be running (or runs on another host or "
        "in another PID namespace, where this check cannot see it): left alone; once you "
        "know it has ended, `snakemake --unlock` removes it"
    )


def verdict(lock: Path, here: Holder | None) -> tuple[bool, str]:
    """Whether the lock file ``lock`` is stale (its recorded holder is known to be dead),
    and why, or why it is left alone."""
    holder = read_holder(lock)
    if holder is None:
        return False, NO_RECORD
    why = holder_is_gone(holder, here)
    return (True, why) if why is not None else (False, held_by(holder))


def clear_stale_locks(workdir: Path) -> tuple[list[Path], str]:
    """Remove those of ``workdir``'s lock files whose own recorded holder is known to be
    dead; leave every other one.

    Returns the files removed and a sentence saying what was done to which, and why.
    """
    locks = sorted((workdir / LOCKS_DIR).glob("*.lock"))
    if not locks:
        return [], "no lock"
    here = this_process()
    removed: list[Path] = []
    reasons: dict[tuple[bool, str], list[str]] = {}
    for lock in locks:
        stale, why = verdict(lock, here)
        if stale:
            lock.unlink(missing_ok=True)
            forget_holder([lock])
            removed.append(lock)
        reasons.setdefault((stale, why), []).append(lock.name)
    return removed, "; ".join(
        f"removed {len(names)} lock file(s) ({', '.join(names)}): {why}"
        if stale
        else f"{len(names)} lock file(s) ({', '.join(names)}) {why}"
        for (stale, why), names in reasons.items()
    )


# ---- the Snakemake side: which lock files are this run's, and the hooks that record them


def own_locks(workflow: Any) -> list[Path]:
    """The lock files the running ``workflow`` wrote itself (none with ``--nolock``, or
    with a persistence backend that keeps its locks elsewhere)."""
    written = getattr(workflow.persistence, "_lockfile", None)
    return [Path(path) for path in written.values()] if isinstance(written, dict) else []


def on_start(workflow: Any) -> None:
    """The run executes: record this process as the holder of each of its lock files."""
    try:
        record_holder(own_locks(workflow))
    except OSError as error:  # no record: its lock is left alone, as one of an older run's
        log.warning("sdcnn.workflow.locks: the lock's holder was not recorded: %s", error)


def on_end(workflow: Any) -> None:
    """The run ends: its records go (Snakemake removes the lock files right after)."""
    forget_holder(own_locks(workflow))


HOOKS: dict[str, Callable[[Any], None]] = {
    "onstart": on_start,
    "onsuccess": on_end,
    "onerror": on_end,
}


def _chained(ours: Callable[[Any], None], workflow: Any, theirs: Callable[..., Any]) -> Any:
    """A handler that runs ``ours`` first, then the handler ``theirs`` it replaces."""

    def handler(log: Any) -> Any:
        ours(workflow)
        return theirs(log)

    handler.sdcnn_locks = True  # type: ignore[attr-defined]
    return handler


def _install(workflow: Any, name: str, ours: Callable[[Any], None]) -> None:
    current = getattr(workflow, f"_{name}")
    if not getattr(current, "sdcnn_locks", False):
        setattr(workflow, f"_{name}", _chained(ours, workflow, current))


def _keeping_ours(workflow: Any, name: str, ours: Callable[[Any], None]) -> Callable:
    """``Workflow.<name>`` (what ``onstart:`` etc. call), such that a handler the main
    Snakefile registers later runs after ours instead of replacing it."""
    register = getattr(workflow, name)

    def registering(func: Callable) -> Any:
        result = register(func)
        _install(workflow, name, ours)
        return result

    return registering


def install_hooks(workflow: Any) -> None:
    """Record the holders of ``workflow``'s locks when it executes, whether this workflow
    is the main Snakefile or a module of another (parse time: registers, writes nothing).

    Snakemake calls ``workflow._onstart``/``_onsuccess``/``_onerror`` (Snakemake 9:
    ``Workflow.execute``), only in the main process of a real run (not with ``-n`` or
    ``--no-hooks``); ours run first, then whatever handler was there, and a handler the
    main Snakefile registers afterwards (``onstart:``) replaces only that one.
    """
    if getattr(workflow, "sdcnn_locks_hooks", False):
        return  # included twice, or by two modules: once is enough
    if not all(hasattr(workflow, f"_{name}") for name in HOOKS):
        # another Snakemake than the one pinned (9.27): no record, so no lock is ever
        # removed by `python -m sdcnn.workflow.locks`; the workflow itself runs as usual
        log.warning(
            "sdcnn.workflow.locks: this Snakemake has no %s: lock holders are not recorded",
            ", ".join(f"_{name}" for name in HOOKS),
        )
        return
    for name, ours in HOOKS.items():
        _install(workflow, name, ours)
        setattr(workflow, name, _keeping_ours(workflow, name, ours))
    workflow.sdcnn_locks_hooks = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", type=Path, default=Path.cwd())
    workdir = parser.parse_args().workdir
    removed, message = clear_stale_locks(workdir)
    if removed or message != "no lock":
        print(f"sdcnn.workflow.locks: {message}")


if __name__ == "__main__":
    main()
