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
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("sdcnn")

_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::FutureWarning",
}


class StepError(Exception):
    """An error whose message is meant for the user as it is (no traceback needed)."""


def pin_threads(threads: int) -> None:
    """Fix the number of threads of OpenMP/MKL (set before torch or cv2 is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def warn_if_threads_differ(key: str, configured: int, reserved: int) -> None:
    """Log a warning when a step runs more threads than Snakemake reserved for it.

    The configured count runs, because the thread count can change the last bits of
    the outputs: with fewer threads, the same config would give other bytes on a
    machine with fewer cores.  Snakemake reserves ``min(threads, --cores)``.
    """
    if configured != reserved:
        log.warning(
            "%s is %d but Snakemake reserved %d core(s) for this job (--cores, or the "
            "cluster's CPUs): running %d threads anyway, so that the outputs are the same "
            "as with %d cores; raise --cores or lower %s to avoid oversubscribing",
            key, configured, reserved, configured, configured, key,
        )  # fmt: skip


def set_hub_mode(*, offline: bool) -> None:
    """Quiet the Hugging Face libraries; with ``offline`` never touch the network."""
    os.environ.update(_QUIET_ENV)
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    if offline:
        os.environ["TRANSFORMERS_OFFLINE"] = "1"


class Console:
    """Writes whole lines to the terminal Snakemake runs in, even while stderr is the log."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def say(self, line: str) -> None:
        os.write(self._fd, f"{line.rstrip()}\n".encode())


def _redirect_stderr(log_path: str) -> tuple[int, Any]:
    """Point fd 2 and sys.stderr at ``log_path``; return what is needed to reach the console."""
    console_fd = os.dup(2)
    log_file = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    os.dup2(log_file.fileno(), 2)
    sys.stderr = log_file
    return console_fd, log_file


@contextlib.contextmanager
def snakemake_step(
    smk: Any, *, threads: int | None = None, offline: bool = True
) -> Iterator[Console]:
    """Context for a Snakemake ``script:``; ``smk`` is the ``snakemake`` object."""
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
    if threads is not None:
        pin_threads(threads)
    set_hub_mode(offline=offline)
    try:
        yield Console(console_fd if console_fd is not None else 2)
    except Exception as error:  # every failure ends here: log it, tell the console, exit 1
        log.error("%s failed: %s", name, error, exc_info=not isinstance(error, StepError))
        if console_fd is not None:
            os.write(console_fd, f"Error in {name}: {error}\n".encode())
        raise SystemExit(1) from None
    log.info("%s done", name)
