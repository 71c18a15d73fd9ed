"""A scratch copy of the workflow, for the tests and the benchmarks.

One definition of what the workflow is made of, shared by the tests
(tests/support/runs.py, tests/conftest.py) and benchmarks/common.py.  It needs only the
standard library and PyYAML (both in requirements.txt), and tests/__init__.py and
tests/support/__init__.py import nothing, so the benchmarks import it in the ``make run``
environment, without pytest.  No step imports it: it is not part of the workflow.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "scripts",
    "sdcnn",
    "julia",
    "config",
    "envs",
    "profiles",
    "report",
)


def copy_workflow(destination: Path, config: dict[str, Any] | None = None) -> Path:
    """Copy the workflow (not its results) to ``destination``; optionally replace its config."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        else:
            shutil.copy2(source, destination / part)
    if config is not None:
        write_config(destination, config)
    return destination


def write_config(workdir: Path, config: dict[str, Any]) -> None:
    """``config`` as the workflow's config/config.yaml in ``workdir``; where it names the
    small config's real set and ``workdir`` has none, that set too (never written again: its
    files' times decide re-runs)."""
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    (workdir / "config" / "config.yaml").write_text(text, encoding="utf-8")
    from tests.support.real_sets import SMALL_REAL, write_small_real_set  # (OpenCV)

    names_it = (config.get("evaluation") or {}).get("real") == SMALL_REAL
    if names_it and not (workdir / SMALL_REAL).exists():
        write_small_real_set(workdir)
