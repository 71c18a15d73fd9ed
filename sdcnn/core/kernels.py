"""What decides which numerical kernels run, and so the last bits of every float32 result.

``kernel_environment`` names it: the CPU (vendor, model, the SIMD extensions it has, the
capability torch's ATen dispatches to), the environment variables that limit those
kernels, and on a GPU its model, compute capability and the CUDA and cuDNN versions.
Two machines with the same environment compute the same bytes; two without may not
(docs/reproducibility.md).  It is recorded in each image's store key and PNG, the
training metrics and the manifest.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

# environment variables that change which kernels run (and so the results' last bits)
KERNEL_KNOBS = (
    "ATEN_CPU_CAPABILITY",  # torch's ATen: default, avx2, avx512, ...
    "ONEDNN_MAX_CPU_ISA",  # oneDNN (torch's CPU convolutions): SSE41, AVX2, AVX512_CORE, ...
    "DNNL_MAX_CPU_ISA",  # the same, by its older name
    "MKL_ENABLE_INSTRUCTIONS",  # MKL (torch's CPU matrix products)
    "MKL_CBWR",  # MKL's conditional numerical reproducibility
    "OPENCV_CPU_DISABLE",  # OpenCV's dispatched kernels (preprocessing)
    "NPY_DISABLE_CPU_FEATURES",  # NumPy's dispatched kernels
    "NVIDIA_TF32_OVERRIDE",  # TF32 on NVIDIA GPUs
)
# the CPU flags that name SIMD extensions kernels are chosen by (x86-64 and arm64)
SIMD_FLAG = re.compile(
    r"^(sse4_[12]|avx\w*|fma|f16c|amx\w*|asimd\w*|sve\w*|sme(?!p$)\w*|bf16|i8mm)$"
)


def cpu_description(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU as kernels see it: architecture, vendor, model and SIMD extensions.

    Read from ``/proc/cpuinfo`` (Linux); elsewhere only the architecture is known."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, colon, value = line.partition(":")
        if not colon:
            if fields:  # the first processor is enough: a node's CPUs are alike
                break
            continue
        fields.setdefault(name.strip(), value.strip())
    flags = fields.get("flags", fields.get("Features", "")).split()
    model = fields.get("model name") or "/".join(
        fields[key] for key in ("CPU implementer", "CPU part") if key in fields
    )
    return {
        "arch": platform.machine(),
        "vendor": fields.get("vendor_id", fields.get("CPU implementer")),
        "model": model or None,
        "simd": sorted(flag for flag in set(flags) if SIMD_FLAG.match(flag)),
    }


def kernel_environment(device: str = "cpu") -> dict[str, Any]:
    """What decides the kernels of a job on ``device`` (``cpu``, ``cuda``, ``cuda:0``):
    the CPU (its kernels make the noise and run every CPU step), the knobs set, and on
    CUDA the GPU.  JSON-ready; equal environments compute equal bytes."""
    import torch

    environment: dict[str, Any] = {
        "cpu": {**cpu_description(), "torch_capability": torch.backends.cpu.get_cpu_capability()},
        "knobs": {name: os.environ[name] for name in KERNEL_KNOBS if name in os.environ},
    }
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        environment["gpu"] = {
            "name": torch.cuda.get_device_name(index),
            "compute_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return environment
