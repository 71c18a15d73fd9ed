"""GPU requests in a real run: config -> the rule's `gpu` resource -> the step, which falls
back to the CPU here and says so."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import copy_workflow

REQUESTED = "a GPU was requested but CUDA is not available here"
FELL_BACK = "running on the CPU (gpu_fallback: cpu)"
NOT_REQUESTED = "no GPU requested: running on the CPU"


@pytest.mark.pipeline
def test_no_gpu_requested_by_default(small_run: Path) -> None:
    logs = small_run / "results" / "logs"
    for rule in ("generate", "predict"):
        assert NOT_REQUESTED in (logs / rule / "city.log").read_text()


@pytest.mark.pipeline
def test_a_gpu_request_reaches_the_step(tmp_path: Path) -> None:
    """generation.gpu: 1 -> the job asks for a GPU; where CUDA does not work it stops
    (gpu_fallback: fail, the default) or runs on the CPU and says so on the console
    (gpu_fallback: cpu); `--resources gpu=0` takes the request back."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["generation"] = {**config["generation"], "gpu": 1, "precision": "fp16"}
    workdir = copy_workflow(tmp_path / "gpu", config)
    target = "results/images/city"
    log = workdir / "results" / "logs" / "generate" / "city.log"
    failed = run_snakemake(workdir, target, check=False)
    assert failed.returncode != 0
    printed = failed.stdout + failed.stderr
    assert f"{REQUESTED}: torch " in printed and "stopping (gpu_fallback: fail)" in printed
    assert not (workdir / target).exists()
    run_snakemake(workdir, target, "--config", "gpu_fallback=cpu")
    text = log.read_text()
    assert FELL_BACK in text and "diffusion pipeline in float32 on cpu" in text, text
    run_snakemake(workdir, target, "--forcerun", "generate", "--resources", "gpu=0")
    text = log.read_text()
    assert NOT_REQUESTED in text and REQUESTED not in text, text
