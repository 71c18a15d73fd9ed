"""The step's device (sdcnn/core/device.py): the fallback to the CPU, said on the console, and
exact fp32 on CUDA.

There is no GPU here, so the CUDA side is checked as far as it can be."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.device import exact_fp32_on_cuda
from sdcnn.core.errors import StepError

FELL_BACK = "running on the CPU (gpu_fallback: cpu)"


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
