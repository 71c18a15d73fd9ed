"""Every benchmark script runs and prints its figures (on tiny inputs; no timing asserted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SMALL_CONFIG

pytestmark = pytest.mark.pipeline


def run_benchmark(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


# ---- the benchmarks run in the `make run` environment, which has no pytest

BENCHMARKS = sorted(
    path.name
    for path in (REPO / "benchmarks").glob("*.py")
    if path.name not in ("common.py", "single_process.py")  # helpers, not command lines
)

# Put first on sys.path by PYTHONPATH, Python's `site` imports it at start-up: from then
# on, importing pytest fails as it does where pytest is not installed.
BLOCK_PYTEST = """
import importlib.abc
import sys


class NoPytest(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pytest", "_pytest"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, NoPytest())
"""


def without_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the repository, in a Python where ``import pytest`` fails."""
    shim = tmp_path / "no-pytest"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BLOCK_PYTEST)
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=env
    )


def test_the_shim_blocks_pytest(tmp_path: Path) -> None:
    result = without_pytest(tmp_path, "-c", "import pytest")
    assert result.returncode != 0 and "No module named 'pytest' (blocked)" in result.stderr


def test_benchmarks_are_all_checked() -> None:
    assert {"dry_run_scale.py", "predict_speed.py", "report_build.py"} <= set(BENCHMARKS)


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_runs_without_pytest(tmp_path: Path, script: str) -> None:
    result = without_pytest(tmp_path, f"benchmarks/{script}", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage:")


def test_single_process_helper_imports_without_pytest(tmp_path: Path) -> None:
    code = "import runpy; runpy.run_path('benchmarks/single_process.py', run_name='helper')"
    result = without_pytest(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]


# ---- each benchmark once, on tiny inputs


def test_dry_run_scale() -> None:
    output = run_benchmark("dry_run_scale.py", "--prompts", "3", "--images", "2", "--repeats", "1")
    assert re.search(r"^generate +3$", output, re.MULTILINE)
    assert "ms of Snakemake per job" in output
    assert re.search(r"^  script: rules only +median", output, re.MULTILINE)


def test_preprocess_speed() -> None:
    output = run_benchmark("preprocess_speed.py", "--images", "4", "--side", "64", "--repeats", "1")
    assert output.count("images/s") == 4 and "x raw" in output


def test_predict_speed() -> None:
    output = run_benchmark("predict_speed.py", "--images", "4", "--size", "32", "--repeats", "1")
    assert "max |difference| 0.0e+00" in output  # the plain network is the same network
    assert output.count("GFLOP/s") == 3


def test_gpu_generate_smoke_on_cpu() -> None:
    output = run_benchmark("gpu_generate.py", "--smoke")
    assert "diffusers defaults" in output and "project:" in output
    assert "CNN (batch 64, 224x224): cpu" in output


def test_pipeline_overhead_same_work(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(SMALL_CONFIG))
    output = run_benchmark("pipeline_overhead.py", "--config", str(config), "--repeats", "1")
    assert "same data outputs byte for byte: yes" in output
    assert "ratio:" in output


def test_report_build(small_run: Path, tmp_path: Path) -> None:
    finished = tmp_path / "run"  # a copy: the shared run must not gain a report.html
    shutil.copytree(small_run, finished, symlinks=True)
    output = run_benchmark("report_build.py", "--workdir", str(finished), "--repeat", "1")
    assert "snakemake --report" in output and "MB" in output
    assert (finished / "results" / "report.html").is_file()
    assert not (small_run / "results" / "report.html").exists()
