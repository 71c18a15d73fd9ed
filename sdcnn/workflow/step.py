"""The frame every Snakemake script runs in.

``snakemake_step`` sends stderr (Python's and the C libraries') and the
``logging`` records to the rule's log, pins the thread count, keeps the Hugging
Face libraries offline and quiet, and turns an exception into one line on the
console, the traceback in the log, and a non-zero exit.  It yields a
``Console`` for the few lines a step means for the person at the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from sdcnn.core.environment import pin_threads, set_hub_mode
from sdcnn.core.errors import CONSOLE_LOGGER, StepError
from sdcnn.core.gpu_slots import claim_gpus

log = logging.getLogger("sdcnn")

# set in every SLURM job: there, a job that runs more threads than it was given CPUs
# slows the other jobs on its node, so a shortfall is an error, not a warning
CLUSTER_JOB_VARIABLES = ("SLURM_JOB_ID",)


def warn_if_threads_differ(
    key: str,
    configured: int,
    reserved: int,
    console: Console | None = None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Say so when a step would run more threads than Snakemake reserved for it; refuse
    to on a cluster.

    The configured count runs, because the thread count can change the last bits of
    the outputs: with fewer threads, the same config would give other bytes on a
    machine with fewer cores.  Snakemake reserves ``min(threads, --cores)``.  On a
    workstation the job runs them anyway, with a warning in its log and on the console
    (``console``); in a SLURM job (which asked for ``threads`` CPUs, so got fewer only
    from a cap such as ``--max-threads``) it stops with a ``StepError`` instead.
    """
    if configured <= reserved:
        return
    if any(name in environ for name in CLUSTER_JOB_VARIABLES):
        raise StepError(
            f"{key} is {configured} but this cluster job was given {reserved} CPU(s): "
            f"{configured} threads would oversubscribe the node, and {reserved} would change "
            f"the outputs' bytes; give the job {configured} CPUs (the rule's threads, sent as "
            f"--cpus-per-task; check --max-threads and the profile) or lower {key}"
        )
    message = (
        f"{key} is {configured} but Snakemake reserved {reserved} core(s) for this job "
        f"(--cores, or the cluster's CPUs): running {configured} threads anyway, so that the "
        f"outputs are the same as with {configured} cores; raise --cores or lower {key} to "
        "avoid oversubscribing"
    )
    log.warning("%s", message)
    if console is not None:
        console.say(f"WARNING {message}")


class Console:
    """Writes whole lines to the terminal Snakemake runs in, even while stderr is the log."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def say(self, line: str) -> None:
        os.write(self._fd, f"{line.rstrip()}\n".encode())


class ConsoleHandler(logging.Handler):
    """Writes a step's log records to the console too, as ``WARNING rule[shard]: ...``."""

    def __init__(self, console: Console, step: str) -> None:
        super().__init__()
        self.console, self.step = console, step

    def emit(self, record: logging.LogRecord) -> None:
        self.console.say(f"{record.levelname} {self.step}: {record.getMessage()}")


def _redirect_stderr(log_path: str) -> tuple[int, Any]:
    """Point fd 2 and sys.stderr at ``log_path``; return what is needed to reach the console."""
    console_fd = os.dup(2)
    log_file = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    os.dup2(log_file.fileno(), 2)
    sys.stderr = log_file
    return console_fd, log_file


@contextlib.contextmanager
def snakemake_step(
    smk: Any, *, threads: int | None = None, offline: bool = True, gpus: int = 0
) -> Iterator[Console]:
    """Context for a Snakemake ``script:``; ``smk`` is the ``snakemake`` object.  With
    ``gpus`` (the job's ``gpu`` resource) it claims that many of the machine's GPUs
    first (``sdcnn.core.gpu_slots``): enter it before anything imports torch."""
    name = f"{smk.rule}[{', '.join(f'{k}={v}' for k, v in smk.wildcards.items())}]"
    console_fd = None
    if smk.log:
        console_fd, _ = _redirect_stderr(str(smk.log[0]))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    console = Console(console_fd if console_fd is not None else 2)
    to_console = ConsoleHandler(console, name)  # the "sdcnn.console" records: there too
    console_logger = logging.getLogger(CONSOLE_LOGGER)
    if console_fd is not None:
        console_logger.addHandler(to_console)
    if threads is not None:
        pin_threads(threads)
    set_hub_mode(offline=offline)
    try:
        claim_gpus(gpus, job=f"{name} in {os.getcwd()}")
        yield console
    except Exception as error:  # every failure ends here: log it, tell the console, exit 1
        log.error("%s failed: %s", name, error, exc_info=not isinstance(error, StepError))
        if console_fd is not None:
            os.write(console_fd, f"Error in {name}: {error}\n".encode())
        raise SystemExit(1) from None
    finally:
        console_logger.removeHandler(to_console)
    log.info("%s done", name)
