"""Device choice: the scripts decide, because Snakemake does not.

Locally Snakemake ignores (or clamps to zero) a rule's ``gpu`` resource, so a
job that asked for a GPU may well run on a machine without one.  The step asks
for CUDA only when its rule requested a GPU, and falls back to the CPU with a
log line when CUDA is not there.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class JobResources(Protocol):
    """What the step needs of ``snakemake.resources`` (a named list) or a dict."""

    def get(self, key: str, default: object = ...) -> object: ...


def gpus_requested(resources: JobResources) -> int:
    """The GPUs a job asked for: its ``gpu`` resource (config: ``generation.gpu``,
    ``classifier.gpu``; a profile's ``set-resources`` may raise it), 0 when unset.

    Read from the job's resources, not passed as a param: where a job runs is not
    what decides its outputs, and a param that reads resources makes Snakemake
    evaluate every job's resources while it builds the DAG (0.4 s at 2,000 jobs).
    """
    return int(resources.get("gpu", 0) or 0)


def select_device(gpus_requested: int) -> str:
    """``"cuda"`` when a GPU was requested and CUDA works, else ``"cpu"``."""
    if gpus_requested <= 0:
        log.info("no GPU requested: running on the CPU")
        return "cpu"
    import torch

    if torch.cuda.is_available():
        log.info("GPU requested and available: running on %s", torch.cuda.get_device_name(0))
        return "cuda"
    log.warning("a GPU was requested but CUDA is not available here: running on the CPU")
    return "cpu"


def device_name(device: str) -> str:
    """``cpu``, or ``cuda:<GPU model>``: the GPU model can change the last bits of results."""
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device}:{torch.cuda.get_device_name(torch.device(device))}"
