"""What produced the outputs: library versions and a hash of the configuration.

Versions are read from the installed distributions' metadata, which is cheap:
nothing heavy (torch, diffusers) is imported to learn its version.
What decides the numerical kernels is in ``sdcnn.core.kernels``.
"""

from __future__ import annotations

import hashlib
import json
import platform
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


# a conda-forge package name -> the name versions are reported under
CONDA_NAMES = {"pytorch": "torch", "opencv": "opencv", "py-opencv": "opencv"}


def env_file_versions(env: dict[str, Any], names: tuple[str, ...]) -> dict[str, str | None]:
    """The versions a conda environment file pins (``name =1.2`` or ``name ==1.2``), as
    ``package_versions`` reports them: ``python`` and ``names`` (None: not pinned)."""
    pinned: dict[str, str] = {}
    for dependency in env.get("dependencies", []):
        if not isinstance(dependency, str):
            continue  # a pip: section
        name, _, version = dependency.replace("==", "=").partition("=")
        name = name.strip()
        pinned[CONDA_NAMES.get(name, name)] = version.split("=")[0].strip()
    return {name: pinned.get(name) for name in ("python", *names)}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# top-level config keys that never change an output: the image store (it only saves
# recomputing), and what a GPU job does where no GPU works (outputs record where they ran)
NOT_OUTPUT_KEYS = ("store", "gpu_fallback")


def output_config(config: dict[str, Any]) -> dict[str, Any]:
    """The validated config less NOT_OUTPUT_KEYS: what the manifest's hash covers."""
    return {key: value for key, value in config.items() if key not in NOT_OUTPUT_KEYS}


def config_sha256(config: dict[str, Any]) -> str:
    """Hash of the configuration after defaults are filled in: equal configs, equal hashes."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()
