"""Real Snakemake runs for the tests: the CLI on a copy of the workflow, runs shared by
every pytest-xdist worker, and what a finished run delivered.

Every run works on a copy (tests/support/workspace.py), never on the repository's own
results/.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import write_sheet
from tests.support.warm_snakemake import WarmSnakemake, warm_runs_checked
from tests.support.workspace import copy_workflow

CONSOLE_LOG = "console.log"  # what a shared run printed, next to its results/
COLD_SNAKEMAKE = "SDCNN_TESTS_COLD_SNAKEMAKE"  # =1: every run a fresh `python -m snakemake`
WARM = WarmSnakemake()


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
    pythonpath: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the real snakemake CLI in ``workdir`` (in ``env``, default: this process's
    environment, with the folders of ``pythonpath`` first on its PYTHONPATH); fail the
    test with its output if asked.

    In this process's environment it runs in a child forked from a server that imported
    Snakemake once (tests/support/warm_snakemake.py: no import cost a call), where that server
    was checked against the installed Snakemake; in another environment, which import-time
    code might read, or with another Snakemake, as ``python -m snakemake``.
    """
    arguments = ["--cores", "2", *args]
    command: Sequence[str] = [sys.executable, "-m", "snakemake", *arguments]
    environment = {**(os.environ if env is None else env), "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        folders = [*map(str, pythonpath), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(folder for folder in folders if folder)
    if env is None and os.environ.get(COLD_SNAKEMAKE) != "1" and warm_runs_checked():
        returncode, stdout, stderr = WARM.run(workdir, arguments, environment, timeout)
        result = subprocess.CompletedProcess(command, returncode, stdout, stderr)
    else:
        result = subprocess.run(
            command,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
        )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def shared_folder(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder ``build`` makes once for the whole test session, in the first pytest-xdist
    worker that asks for it; the other workers wait for it, then share it (read-only).

    A build that failed is not tried again: the other workers fail with its message.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' basetemps are popen-gw0, popen-gw1, ... in it
    folder, outcome = root / f"shared-{name}", root / f"shared-{name}.outcome"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if outcome.exists():
            failure = outcome.read_text(encoding="utf-8")
            if failure:
                pytest.fail(f"the shared run {name!r} failed in another worker:\n{failure}")
            return folder
        try:
            build(folder)
        except BaseException as error:  # pytest.fail raises an exception of BaseException's
            outcome.write_text(f"{type(error).__name__}: {error}", encoding="utf-8")
            raise
        outcome.write_text("", encoding="utf-8")
    return folder


def build_finished_run(workdir: Path, config: dict[str, Any], sheet: Sequence[dict] = ()) -> None:
    """A copy of the workflow in ``workdir`` run to the end on ``config`` (and a prompt
    sheet, if given); what the run printed (stdout, then stderr) in ``console.log`` beside
    its results/."""
    copy_workflow(workdir, config)
    if sheet:
        write_sheet(workdir / "prompts.tsv", sheet)
    result = run_snakemake(workdir)
    (workdir / CONSOLE_LOG).write_text(result.stdout + result.stderr, encoding="utf-8")


def result_files(workdir: Path) -> dict[str, bytes]:
    """Every data output under results/ (not logs, benchmarks or Snakemake's markers)."""
    results = workdir / "results"
    files = {}
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if (
            path.is_file()
            and relative.parts[0] not in ("logs", "benchmarks")
            and path.name != ".snakemake_timestamp"
        ):
            files[str(relative)] = path.read_bytes()
    return files
