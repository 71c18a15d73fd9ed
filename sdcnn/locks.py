"""Stale Snakemake locks: remove them when no Snakemake runs in this folder any more.

Snakemake locks a working directory with files under ``.snakemake/locks`` and
deletes them when it exits; a run killed with ``kill -9`` (or by the OOM killer,
or a lost SSH session) leaves them behind, and every later run then fails with
"Directory cannot be locked" until someone runs ``snakemake --unlock``.

Before Snakemake takes its lock, the workflow calls ``clear_stale_locks``: if no
other live process has this folder as its working directory and "snakemake" in
its command line, the lock files are left over from a dead run and are removed.
If such a process exists, nothing is touched and Snakemake refuses to run as
usual.  On systems without ``/proc`` nothing is ever removed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

PROC = Path("/proc")


def _ancestors(pid: int) -> set[int]:
    """``pid`` and its parents (reading /proc/<pid>/stat)."""
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def snakemake_processes_in(folder: Path, proc: Path = PROC) -> list[int]:
    """Live processes (not this one or its parents) running snakemake with cwd ``folder``."""
    target = folder.resolve()
    ourselves = _ancestors(os.getpid())
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in ourselves:
            continue
        try:
            if Path(os.readlink(entry / "cwd")).resolve() != target:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = next(
                line
                for line in (entry / "status").read_text().splitlines()
                if line.startswith("State:")
            )
        except (OSError, StopIteration):
            continue
        if b"snakemake" in command and "zombie" not in state:
            found.append(int(entry.name))
    return found


def clear_stale_locks(workdir: Path) -> list[Path]:
    """Remove ``.snakemake/locks/*`` when no other Snakemake process works in ``workdir``."""
    locks_dir = workdir / ".snakemake" / "locks"
    lock_files = sorted(locks_dir.glob("*.lock")) if locks_dir.is_dir() else []
    if not lock_files or not PROC.is_dir() or snakemake_processes_in(workdir):
        return []
    for path in lock_files:
        path.unlink(missing_ok=True)
    log.warning("removed %d stale lock(s) left by a Snakemake run that was killed", len(lock_files))
    return lock_files
