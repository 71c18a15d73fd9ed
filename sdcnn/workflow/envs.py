"""The workflow's conda environment files (envs/): which one a job runs in, and its pins."""

from __future__ import annotations

from sdcnn.core.provenance import env_file_versions, package_versions


def conda_env(step: str, gpus: int, backend: str = "torch") -> str:
    """The conda environment file (relative to rules/) of generate or predict jobs: Julia
    for flux; torch's CUDA build for jobs that get a GPU, else its CPU build."""
    if step == "predict" and backend == "flux":
        return "../envs/julia.yaml"
    name = {"generate": "diffusion", "predict": "predict-torch"}[step]
    return f"../envs/{name}-cuda.yaml" if gpus > 0 else f"../envs/{name}.yaml"


def planned_versions(names: tuple[str, ...], conda_env_file: str | None) -> dict[str, str | None]:
    """The versions jobs will run: a conda environment file's pins (``--sdm conda``), else
    this Python environment's."""
    if conda_env_file is None:
        return package_versions(names)
    import yaml

    with open(conda_env_file, encoding="utf-8") as env_file:
        return env_file_versions(yaml.safe_load(env_file), names)
