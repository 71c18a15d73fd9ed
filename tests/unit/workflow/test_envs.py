"""The conda envs the rules run in (sdcnn/workflow/envs.py): by GPU and backend, and the
versions they pin."""

from __future__ import annotations

from pathlib import Path

from sdcnn.workflow.envs import conda_env, planned_versions
from tests.support.workspace import REPO


def test_conda_envs_follow_gpus_and_backend() -> None:
    assert conda_env("generate", 0) == "../envs/diffusion.yaml"
    assert conda_env("generate", 1) == "../envs/diffusion-cuda.yaml"
    assert conda_env("predict", 2) == "../envs/predict-torch-cuda.yaml"
    assert conda_env("predict", 0, "flux") == "../envs/julia.yaml"
    for name in ("diffusion", "diffusion-cuda", "predict-torch", "predict-torch-cuda", "julia"):
        assert (REPO / "envs" / f"{name}.yaml").is_file()


def test_planned_versions_are_the_env_files_pins_under_conda(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("dependencies:\n  - python =3.11\n  - pytorch-cpu ==2.13.0\n  - pip\n")
    planned = planned_versions(("torch", "diffusers"), str(env))
    assert planned["diffusers"] is None and planned["python"] == "3.11"
    installed = planned_versions(("torch",), None)
    assert installed["torch"] is not None and installed["torch"].startswith("2.13.0")
