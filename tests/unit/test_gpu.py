"""GPU requests: config -> the rule's `gpu` resource -> the step's device and dtype.

There is no GPU here, so the CUDA side is checked as far as it can be: the dtype chosen
for each precision on CUDA, and that a request reaches the step, which then falls back
to the CPU and says so.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from sdcnn.core.device import exact_fp32_on_cuda
from sdcnn.core.errors import StepError
from sdcnn.generate.pipeline import dtype_name, generation_dtype
from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow

SCHEMA = str(REPO / "config" / "schema.yaml")
REQUESTED = "a GPU was requested but CUDA is not available here"
FELL_BACK = "running on the CPU (gpu_fallback: cpu)"
NOT_REQUESTED = "no GPU requested: running on the CPU"


@pytest.mark.parametrize(
    "precision, dtype",
    [("auto", "float16"), ("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")],
)
def test_precision_on_cuda(precision: str, dtype: str) -> None:
    assert dtype_name(precision, "cuda") == dtype


@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16", "fp32"])
def test_the_cpu_always_runs_in_float32(precision: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sdcnn.generate.pipeline"):
        assert str(generation_dtype(precision, "cpu")) == "torch.float32"
    warned = "applies on a GPU only" in caplog.text
    assert warned == (precision in ("fp16", "bf16"))


def test_unknown_precision_is_an_error() -> None:
    with pytest.raises(StepError, match="generation.precision 'fp8'"):
        dtype_name("fp8", "cuda")


def test_gpu_and_precision_defaults() -> None:
    config = {"prompts": {"p": {"text": "x"}}}
    validate(config, SCHEMA)
    assert config["generation"]["gpu"] == 0 and config["generation"]["precision"] == "auto"
    assert config["classifier"]["gpu"] == 0


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("generation", "gpu", 2),
        ("generation", "gpu", -1),
        ("generation", "gpu", True),
        ("classifier", "gpu", 2),
        ("generation", "precision", "fp8"),
    ],
)
def test_schema_rejects(section: str, key: str, value: object) -> None:
    config = copy.deepcopy(SMALL_CONFIG)
    config[section] = {**config.get(section, {}), key: value}
    with pytest.raises(WorkflowError):
        validate(config, SCHEMA)


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


def test_the_fallback_to_the_cpu_is_said_on_the_console(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The warning of gpu_fallback: cpu reaches the console, not only the job's log."""
    from types import SimpleNamespace

    import torch

    from sdcnn.core.device import select_device
    from sdcnn.workflow.step import snakemake_step

    if torch.cuda.is_available():
        pytest.skip("CUDA works here: no fallback to see")
    log = tmp_path / "job.log"
    smk = SimpleNamespace(rule="generate", wildcards={"shard": "city"}, log=[str(log)])
    with snakemake_step(smk):
        assert select_device(1, "cpu") == "cpu"
        with pytest.raises(StepError, match="stopping"):
            select_device(1)
    assert FELL_BACK in capfd.readouterr().err
    assert FELL_BACK in log.read_text()


def test_gpus_requested_reads_the_gpu_resource() -> None:
    from sdcnn.core.resources import gpus_requested

    assert gpus_requested({}) == 0
    assert gpus_requested({"gpu": 1}) == 1
    assert gpus_requested({"gpu": 0, "mem_mb": 1000}) == 0


# ---- true fp32 and deterministic algorithms for the classifier on CUDA (sdcnn/core/device.py)


@pytest.fixture
def torch_numerics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """torch, with its global numerics flags (and CUBLAS_WORKSPACE_CONFIG) restored after."""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield torch
    cudnn_tf32, matmul_tf32, deterministic, benchmark, algorithms, warn_only = saved
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = benchmark
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)


def numerics(torch: Any) -> dict[str, object]:
    return {
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def test_exact_fp32_on_cuda_sets_the_flags(torch_numerics: Any) -> None:
    torch = torch_numerics
    torch.backends.cudnn.allow_tf32 = True  # torch's defaults, and a benchmark mode on
    torch.backends.cudnn.benchmark = True
    exact_fp32_on_cuda("cuda")
    assert numerics(torch) == {
        "cudnn.allow_tf32": False,
        "matmul.allow_tf32": False,
        "cudnn.deterministic": True,
        "cudnn.benchmark": False,
        "deterministic algorithms": True,
    }
    assert torch.get_float32_matmul_precision() == "highest"  # no TF32 for matmuls either
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_exact_fp32_keeps_a_workspace_config_that_is_set(
    torch_numerics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    exact_fp32_on_cuda("cuda:0")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert torch_numerics.backends.cudnn.allow_tf32 is False


def test_exact_fp32_changes_nothing_on_the_cpu(torch_numerics: Any) -> None:
    before = numerics(torch_numerics)
    exact_fp32_on_cuda("cpu")
    assert numerics(torch_numerics) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_the_torch_predict_path_asks_for_exact_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from sdcnn.classify import prediction
    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.weights import init_weights

    devices: list[str] = []
    monkeypatch.setattr(prediction, "exact_fp32_on_cuda", devices.append)
    model = FluxCNN(init_weights(in_channels=1, image_size=8, n_labels=2, seed=0))
    prediction.predict_torch(model, np.zeros((1, 1, 8, 8), dtype=np.float32), "cpu")
    assert devices == ["cpu"]
