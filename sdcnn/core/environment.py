"""Process settings a step makes before it imports torch: thread counts and Hugging Face mode.

``pin_threads(4)`` fixes OpenMP/MKL/OpenBLAS to 4 threads; ``set_hub_mode(offline=True)``
quiets the Hugging Face libraries and keeps them off the network.
"""

from __future__ import annotations

import os

_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::FutureWarning",
}


def pin_threads(threads: int) -> None:
    """Fix the number of threads of OpenMP/MKL (set before torch or cv2 is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def set_hub_mode(*, offline: bool) -> None:
    """Quiet the Hugging Face libraries; with ``offline`` never touch the network."""
    os.environ.update(_QUIET_ENV)
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    if offline:
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
