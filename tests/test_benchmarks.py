"""Every benchmark script runs and prints its figures (on tiny inputs; no timing asserted)."""

from __future__ import annotations

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
