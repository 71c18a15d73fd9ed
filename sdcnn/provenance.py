"""What produced the outputs: library versions and a hash of the configuration.

Versions are read from the installed distributions' metadata, which is cheap:
nothing heavy (torch, diffusers) is imported to learn its version.

``kernel_environment`` says what decides which numerical kernels run, and so the last
bits of every float32 result: the CPU (vendor, model, the SIMD extensions it has, the
capability torch's ATen dispatches to), the environment variables that limit those
kernels, and on a GPU its model, compute capability and the CUDA and cuDNN versions.
Two machines with the same environment compute the same bytes; two without may not
(docs/reproducibility.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from importlib import metadata
from typing import Any

# what is reported -> the distributions that may provide it, first found wins
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "diffusers": ("diffusers",),
    "transformers": ("transformers",),
    "snakemake": ("snakemake",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv"),
    "numpy": ("numpy",),
    "safetensors": ("safetensors",),
}


def distribution_version(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_versions(names: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """``{"python": "3.11.7", "torch": "2.13.0+cpu", ...}``; None for what is not installed."""
    wanted = names if names is not None else tuple(DISTRIBUTIONS)
    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: distribution_version(DISTRIBUTIONS[name]) for name in wanted})
    return versions


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_sha256(config: dict[str, Any]) -> str:
    """Hash of the configuration after defaults are filled in: equal configs, equal hashes."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


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
