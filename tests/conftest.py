"""The suite's fixtures and hooks: the shared real runs of the workflow, and the order
the files run in.

The tests are grouped by what they run:

- tests/unit/: one module at a time, no Snakemake run; tests/unit/<stage>/test_<module>.py
  mirrors sdcnn/<stage>/<module>.py, tests/unit/project/ holds the checks of the
  repository as a whole (lint-like scans, layers, envs, notebook use), tests/unit/support/
  those of tests/support/;
- tests/workflow/: the real Snakemake workflow, run on a copy in a temporary folder;
- tests/contract/: the two prediction backends' contract (golden vectors, Julia);
- tests/support/: the helpers they share (no tests): configs, runs, workspace, ...

The session fixture ``small_run`` runs the real workflow once (real Snakemake, real
diffusers, real OpenCV, real torch) on a small config; tests that only read its outputs
share it, as they share ``default_run`` and ``sharded_run``.
"""

from __future__ import annotations

import os

# The suite runs more processes than there are cores (make test: 3 workers, each running
# Snakemake with --cores 2). OpenMP threads that spin while they wait (torch's default)
# then burn the cores the others need: the default run's training took ten times as
# long. Passive waiting changes no result (the same trained bytes), only the CPU burnt.
# Set before anything loads torch; the Snakemake runs and their jobs inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

from tests.support.configs import SHARDED_CONFIG, SMALL_CONFIG, sheet_rows
from tests.support.runs import build_finished_run, run_snakemake, shared_folder
from tests.support.workspace import copy_workflow

# The slowest files first (the SLURM file and the default run take minutes alone): with
# a few workers (make test), a slow file handed out last would leave one worker alone at
# the end. (pytest-xdist would hand out the files with the most tests first: make test
# says --no-loadscope-reorder.) Paths under tests/.
SLOW_FIRST = [
    "workflow/test_slurm.py",
    "workflow/test_default_run.py",
    "workflow/test_reproducibility.py",
    "workflow/test_imagestore_runs.py",
    "workflow/test_benchmarks.py",
    "workflow/test_shards.py",
    "workflow/test_reruns.py",
    "workflow/test_families_run.py",
]
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of SLOW_FIRST first, in that order; the rest as collected."""

    def rank(item: pytest.Item) -> int:
        path = item.path.resolve()
        name = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


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
    read-only as ``small_run``: tests/workflow/test_default_run.py,
    tests/workflow/test_reproducibility.py)."""
    return shared_folder(
        tmp_path_factory, "default_run", lambda folder: run_snakemake(copy_workflow(folder))
    )


@pytest.fixture(scope="session")
def sharded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full run of a 40-prompt sheet in 4 shards (SHARDED_CONFIG, one for all
    workers, read-only as ``small_run``); the folder it ran in."""
    return shared_folder(
        tmp_path_factory,
        "sharded_run",
        lambda folder: build_finished_run(folder, SHARDED_CONFIG, sheet_rows()),
    )


@pytest.fixture(scope="session")
def family_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipeline of every text-to-image family (tests/support/families.py), built
    once for all workers; its saved folder by family name. Tests load them, never write."""
    from tests.support.families import FAMILIES, build_family

    def build_all(folder: Path) -> None:
        for name in FAMILIES:
            build_family(name, folder)

    folder = shared_folder(tmp_path_factory, "families", build_all)
    return {name: folder / name for name in FAMILIES}
