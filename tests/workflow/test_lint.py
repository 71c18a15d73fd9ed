"""The workflow passes Snakemake's linter and is snakefmt-formatted; the Python is ruff-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.workspace import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean() -> None:
    result = run(sys.executable, "-m", "snakemake", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tool", ["snakefmt", "ruff"])
def test_formatted(tool: str) -> None:
    executable = shutil.which(tool, path=str(REPO / ".venv" / "bin")) or shutil.which(tool)
    if executable is None:
        pytest.skip(f"{tool} is not installed (it is in requirements-dev.txt)")
    command = [executable, "--check", "."] if tool == "snakefmt" else [executable, "check", "."]
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr
