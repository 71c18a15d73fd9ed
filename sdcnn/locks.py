"""Snakemake's lock of a killed run: removed only when its holder is known to be dead.

Snakemake locks a working directory with files under ``.snakemake/locks`` and deletes
them when it exits; a run killed with ``kill -9`` (or by the OOM killer, or a lost SSH
session) leaves them behind, and every later run then stops with "Directory cannot be
locked" until someone runs ``snakemake --unlock``.

Nothing here runs while Snakemake parses the workflow: parsing happens again in every
cluster job, dry run, lint and report, on hosts where the run that holds the lock is
invisible, so a parse-time guess of "stale" would delete the lock of a live run.
Instead:

- when a run starts executing (Snakemake's ``onstart``, in the main process only; never
  in dry runs or cluster jobs, which Snakemake starts with ``--no-hooks``), it records
  who holds the lock: host, boot, PID namespace, process id and the process's start
  time, in ``.snakemake/sdcnn-lock-holder.json``; ``onsuccess``/``onerror`` remove it;
- ``python -m sdcnn.locks`` (which ``make run`` calls before Snakemake) removes the lock
  files only when that record names a process on this very host, boot and PID
  namespace that no longer exists (a process id taken over by a newer process counts as
  gone: its start time differs).  In every other case (no record, another host or
  namespace, the holder alive) it touches nothing and says why; Snakemake then refuses
  to run, as usual, and ``snakemake --unlock`` is the way out once you know no run is
  left.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from sdcnn.fileio import write_json_atomic

log = logging.getLogger(__name__)

PROC = Path("/proc")
HOLDER_FILE = Path(".snakemake") / "sdcnn-lock-holder.json"
LOCKS_DIR = Path(".snakemake") / "locks"


@dataclass(frozen=True)
class Holder:
    """Who holds a working directory's lock: enough to tell, later, that it is gone."""

    host: str
    boot_id: str  # a reboot ends every process, and reuses process ids
    pid_namespace: str  # another namespace is another "host": its processes are invisible
    pid: int
    start_ticks: int  # the process's start time: tells a reused process id apart

    @property
    def where(self) -> str:
        return f"process {self.pid} on {self.host}"


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


def record_holder(workdir: Path) -> None:
    """Snakemake's ``onstart``: this process holds the lock of ``workdir``."""
    holder = this_process()
    if holder is not None:
        write_json_atomic(workdir / HOLDER_FILE, asdict(holder))


def forget_holder(workdir: Path) -> None:
    """Snakemake's ``onsuccess``/``onerror``: the run ends and releases its lock."""
    (workdir / HOLDER_FILE).unlink(missing_ok=True)


def read_holder(workdir: Path) -> Holder | None:
    try:
        return Holder(**json.loads((workdir / HOLDER_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


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


def clear_stale_locks(workdir: Path) -> tuple[list[Path], str]:
    """Remove ``workdir``'s lock files if their holder is known to be dead.

    Returns the files removed and a sentence saying what was done, and why.
    """
    locks = sorted((workdir / LOCKS_DIR).glob("*.lock"))
    if not locks:
        return [], "no lock"
    holder = read_holder(workdir)
    if holder is None:
        return [], (
            f"{len(locks)} lock file(s) of a run that recorded no holder (it may still be "
            "building its DAG, or run with an older version): left alone; if no Snakemake "
            "works in this folder on any machine, remove them with `snakemake --unlock`"
        )
    why = holder_is_gone(holder, this_process())
    if why is None:
        return [], (
            f"the lock is held by {holder.where}, which may still be running (or runs on "
            "another host or in another PID namespace, where this check cannot see it): left "
            "alone; once you know it has ended, `snakemake --unlock` removes it"
        )
    for path in locks:
        path.unlink(missing_ok=True)
    forget_holder(workdir)
    return locks, f"removed {len(locks)} lock file(s): {why}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", type=Path, default=Path.cwd())
    workdir = parser.parse_args().workdir
    removed, message = clear_stale_locks(workdir)
    if removed or message != "no lock":
        print(f"sdcnn.locks: {message}")


if __name__ == "__main__":
    main()
