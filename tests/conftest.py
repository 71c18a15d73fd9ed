"""Shared fixtures: a copy of the workflow in a temporary folder, and one real run of it.

Every pipeline test works on a copy, never on the repository's own results/.
The session fixture ``small_run`` runs the real workflow once (real Snakemake,
real diffusers, real OpenCV, real torch) on a small config; tests that only read
its outputs share it.
"""

from __future__ import annotations

import os

# The suite runs more processes than there are cores (make test: 3 workers, each running
# Snakemake with --cores 2). OpenMP threads that spin while they wait (torch's default)
# then burn the cores the others need: the default run's training took 333 s instead of
# 29 s. Passive waiting changes no result (the same trained bytes), only the CPU burnt.
# Set before anything loads torch; the Snakemake runs and their jobs inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import contextlib
import copy
import fcntl
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from warm_snakemake import WarmSnakemake, warm_runs_checked

# the workflow's parts and the copy helpers live in the package, so that the benchmarks
# share them without importing pytest (sdcnn/workflow/workspace.py)
from sdcnn.workflow.workspace import REPO, WORKFLOW_PARTS, copy_workflow, write_config

__all__ = ["REPO", "WORKFLOW_PARTS", "copy_workflow", "write_config"]

# Small enough to run in seconds, large enough to exercise everything:
# two prompts (one with a negative prompt), several images, shrinking resize.
SMALL_CONFIG: dict[str, Any] = {
    "prompts": {
        "city": {"text": "A futuristic city at sunset", "n_images": 3, "label": "ship"},
        "harbor": {
            "text": "A quiet fishing harbor at dawn, watercolor",
            "negative_prompt": "blurry",
            "n_images": 2,
            "label": "dog",
        },
    },
    "generation": {"steps": 2, "height": 64, "width": 64, "base_seed": 7},
    "preprocess": {"size": 32},
    # trained on the two prompts' images, as the default config is (in 2 quick epochs)
    "classifier": {"labels": ["cat", "dog", "ship"], "weights": "trained", "weights_seed": 3},
    "training": {"epochs": 2, "batch_size": 2, "holdout_every": 3},
}


# The slowest files first (the SLURM file ~6 min, the default run ~3 min, run alone): with
# a few workers (make test), a slow file handed out last would leave one worker alone at
# the end. (pytest-xdist would hand out the files with the most tests first: make test
# says --no-loadscope-reorder.)
SLOW_FIRST = ["test_slurm.py", "test_default_run.py", "test_reproducibility.py",
              "test_imagestore_runs.py", "test_benchmarks.py", "test_shards.py",
              "test_reruns.py"]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of SLOW_FIRST first, in that order; the rest as collected."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


CONSOLE_LOG = "console.log"  # what the small run printed, next to its results/
COLD_SNAKEMAKE = "SDCNN_TESTS_COLD_SNAKEMAKE"  # =1: every run a fresh `python -m snakemake`
WARM = WarmSnakemake()


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real snakemake CLI in ``workdir`` (in ``env``, default: this process's
    environment); fail the test with its output if asked.

    In this process's environment it runs in a child forked from a server that imported
    Snakemake once (tests/warm_snakemake.py: ~2 s less a call), where that server was
    checked against the installed Snakemake; in another environment, which import-time
    code might read, or with another Snakemake, as ``python -m snakemake``.
    """
    arguments = ["--cores", "2", *args]
    command: Sequence[str] = [sys.executable, "-m", "snakemake", *arguments]
    environment = {**(os.environ if env is None else env), "PYTHONDONTWRITEBYTECODE": "1"}
    if env is None and os.environ.get(COLD_SNAKEMAKE) != "1" and warm_runs_checked():
        returncode, stdout, stderr = WARM.run(workdir, arguments, environment, timeout)
        result = subprocess.CompletedProcess(command, returncode, stdout, stderr)
    else:
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=timeout,
            env=environment,
        )  # fmt: skip
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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full run of the workflow on SMALL_CONFIG (one for all workers); the folder it
    ran in. Tests read it; one that runs Snakemake there does so only with --dry-run
    (which writes nothing but Snakemake's I/O cache)."""
    return shared_folder(
        tmp_path_factory, "small_run", lambda folder: build_finished_run(folder, SMALL_CONFIG)
    )


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of config/config.yaml as it is, as `make run` runs it (one for all workers,
    read-only as ``small_run``: tests/test_default_run.py, tests/test_reproducibility.py)."""
    return shared_folder(
        tmp_path_factory, "default_run", lambda folder: run_snakemake(copy_workflow(folder))
    )


# A sheet of 40 prompts in 4 shards, with the small config's settings; its first two rows
# are the small config's prompts, so their outputs must equal the small run's byte for byte.
SHEET_PROMPTS = 40
SHARDED_CONFIG: dict[str, Any] = {
    **{key: value for key, value in SMALL_CONFIG.items() if key != "prompts"},
    "prompts": "prompts.tsv",
    "shards": 4,
    # every picture drawn, to compare them with the unsharded run's (the caps: unit tests)
    "figures": {"charts": None, "contact_sheets": None},
}


def sheet_rows() -> list[dict[str, Any]]:
    rows = [
        {"prompt_id": prompt_id, "negative_prompt": "", **prompt}
        for prompt_id, prompt in SMALL_CONFIG["prompts"].items()
    ]
    rows += [
        {"prompt_id": f"p{i:02d}", "text": f"a picture number {i}", "negative_prompt": "",
         "n_images": 1, "label": None}
        for i in range(SHEET_PROMPTS - len(rows))
    ]  # fmt: skip
    return rows


def write_sheet(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = ["prompt_id", "text", "negative_prompt", "n_images", "label"]
    lines = ["\t".join(columns)]
    lines += ["\t".join("" if row[c] is None else str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def sharded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full run of a 40-prompt sheet in 4 shards (SHARDED_CONFIG, one for all
    workers, read-only as ``small_run``); the folder it ran in."""
    return shared_folder(
        tmp_path_factory,
        "sharded_run",
        lambda folder: build_finished_run(folder, SHARDED_CONFIG, sheet_rows()),
    )


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


def config_with(path: Sequence[str], value: Any) -> dict[str, Any]:
    """SMALL_CONFIG with one key set, e.g. ``config_with(("generation", "height"), 100)``."""
    config = copy.deepcopy(SMALL_CONFIG)
    target = config
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return config


@contextlib.contextmanager
def closed_port_url() -> Iterator[str]:
    """An http URL on this machine that refuses connections at once (bound, not listening)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"
