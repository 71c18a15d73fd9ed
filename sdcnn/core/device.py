"""Device choice: the scripts decide, because Snakemake does not.

Locally Snakemake ignores (or clamps to zero) a rule's ``gpu`` resource, so a
job that asked for a GPU may well run on a machine without one.  The step asks
for CUDA only when its rule requested a GPU, and falls back to the CPU with a
log line when CUDA is not there.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sdcnn.core.errors import CONSOLE_LOGGER, StepError

log = logging.getLogger(__name__)


# config gpu_fallback: what a job that asked for a GPU does where CUDA does not work
GPU_FALLBACKS = ("fail", "cpu")
console_log = logging.getLogger(CONSOLE_LOGGER)  # the console too, not only the job's log


def no_cuda_reason(torch: Any) -> str:
    """Why torch has no CUDA here: a CPU-only build (what conda solves on a login node
    without a GPU, README "GPUs"), or a CUDA build that finds no GPU or driver."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU or driver"


def select_device(gpus_requested: int, gpu_fallback: str = "fail") -> str:
    """``"cuda"`` when a GPU was requested and CUDA works; ``"cpu"`` when none was
    requested. Requested where CUDA does not work: a ``StepError`` (``gpu_fallback``
    ``fail``), or the CPU with a warning on the console and in the log (``cpu``)."""
    if gpus_requested <= 0:
        log.info("no GPU requested: running on the CPU")
        return "cpu"
    if gpu_fallback not in GPU_FALLBACKS:
        raise StepError(f"gpu_fallback must be one of {GPU_FALLBACKS}, not {gpu_fallback!r}")
    import torch

    if torch.cuda.is_available():
        log.info("GPU requested and available: running on %s", torch.cuda.get_device_name(0))
        return "cuda"
    problem = f"a GPU was requested but CUDA is not available here: {no_cuda_reason(torch)}"
    if gpu_fallback == "fail":
        raise StepError(
            f"{problem}; stopping (gpu_fallback: fail). Run it where a GPU is, with a CUDA "
            "build of torch (README: GPUs), or set gpu_fallback: cpu to run on the CPU"
        )
    console_log.warning("%s: running on the CPU (gpu_fallback: cpu)", problem)
    return "cpu"


def device_name(device: str) -> str:
    """``cpu``, or ``cuda:<GPU model>``: the GPU model can change the last bits of results."""
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device}:{torch.cuda.get_device_name(torch.device(device))}"


# cuBLAS is deterministic only with a fixed workspace; torch checks this variable at the
# first cuBLAS call once deterministic algorithms are on (aten/src/ATen/Context.cpp,
# checkCuBLASConfigDeterministic, which accepts ":4096:8" or ":16:8").
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def exact_fp32_on_cuda(device: str) -> None:
    """On CUDA, make torch compute the classifier in true fp32, with deterministic
    algorithms; nothing on the CPU.  Call before the first CUDA computation.

    - ``torch.backends.cudnn.allow_tf32`` (True by default) off: fp32 convolutions on
      Ampere and later would otherwise run in TF32 (a 10-bit mantissa), which moves the
      probabilities by ~1e-4, beyond the backends' 1e-5 contract (docs/equivalence.md).
      torch then gives cuDNN ``CUDNN_FMA_MATH`` (aten/src/ATen/cudnn/Descriptors.h);
    - ``torch.backends.cuda.matmul.allow_tf32`` off (already the default) for the dense
      layer; only these legacy flags are used: torch refuses a mix of them and the newer
      ``fp32_precision`` settings (Context.cpp, allowTF32CuBLAS);
    - ``cudnn.deterministic`` on and ``cudnn.benchmark`` off: the same convolution
      algorithm on every run, not the fastest one timed in this run;
    - ``torch.use_deterministic_algorithms(True, warn_only=True)``, with
      ``CUBLAS_WORKSPACE_CONFIG`` set unless the environment sets it: deterministic
      kernels wherever torch has them; an operation without one logs a warning instead
      of failing the job (the classifier's operations all have one).
    """
    if not device.startswith("cuda"):
        return
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    log.info("CUDA: true fp32 (no TF32), deterministic algorithms")
