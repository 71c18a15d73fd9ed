"""Device choice: the scripts decide, because Snakemake does not.

Locally Snakemake ignores (or clamps to zero) a rule's ``gpu`` resource, so a
job that asked for a GPU may well run on a machine without one.  The step asks
for CUDA only when its rule requested a GPU, and falls back to the CPU with a
log line when CUDA is not there.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
