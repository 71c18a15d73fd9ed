"""GPU slots in real Snakemake runs: with ``--resources gpu=4`` and four (stand-in) GPUs,
four GPU jobs run at once, each on a device of its own (sdcnn/core/gpu_slots.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest

from sdcnn.core.gpu_slots import LOCK_DIR_VARIABLE
from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow

JOBS, GPUS, HOLD_S = 8, 4, 3.0

# eight jobs asking for a GPU each; the workstation profile is the real one
SNAKEFILE = f"""
rule all:
    input:
        expand("out/{{i}}.json", i=range({JOBS})),


rule job:
    output:
        "out/{{i}}.json",
    log:
        "logs/{{i}}.log",
    resources:
        gpu=1,
    script:
        "job.py"
"""

# the step frame the real scripts enter, then what the job saw, while it holds its GPU
JOB_SCRIPT = f"""
import json, os, sys, time

from sdcnn.core.resources import gpus_requested
from sdcnn.workflow.step import snakemake_step

smk = snakemake
torch_before = "torch" in sys.modules
with snakemake_step(smk, gpus=gpus_requested(smk.resources)):
    start = time.time()
    time.sleep({HOLD_S})
    seen = {{
        "start": start,
        "end": time.time(),
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_before": torch_before,
    }}
    with open(smk.output[0], "w") as handle:
        json.dump(seen, handle)
"""


def slot_env(tmp_path: Path, devices: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "CUDA_VISIBLE_DEVICES": devices, LOCK_DIR_VARIABLE: str(tmp_path / "locks")}


def overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def most_at_once(jobs: list[dict]) -> int:
    return max(sum(1 for other in jobs if overlap(job, other)) for job in jobs)


def test_four_gpu_jobs_at_once_each_on_its_own_device(tmp_path: Path) -> None:
    workdir = tmp_path / "workflow"
    (workdir / "profiles" / "default").mkdir(parents=True)
    shutil.copy(REPO / "profiles" / "default" / "config.yaml", workdir / "profiles" / "default")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    (workdir / "job.py").write_text(JOB_SCRIPT)
    env = slot_env(tmp_path, ",".join(map(str, range(GPUS))))
    run_snakemake(workdir, "--cores", "8", "--resources", f"gpu={GPUS}", env=env, pythonpath=[REPO])
    jobs = [json.loads((workdir / "out" / f"{i}.json").read_text()) for i in range(JOBS)]
    assert not any(job["torch_before"] for job in jobs)  # nothing started CUDA before the claim
    assert all(job["devices"] in {"0", "1", "2", "3"} for job in jobs), jobs
    assert most_at_once(jobs) <= GPUS
    for a in jobs:
        for b in jobs:
            assert a is b or not overlap(a, b) or a["devices"] != b["devices"], (a, b)
    assert {job["devices"] for job in jobs} == {"0", "1", "2", "3"}
    for i, job in enumerate(jobs):
        text = (workdir / "logs" / f"{i}.log").read_text()
        assert f"GPU slot: CUDA_VISIBLE_DEVICES={job['devices']} (of 0,1,2,3)" in text


@pytest.mark.pipeline
def test_the_generate_log_names_its_gpu_slot(tmp_path: Path) -> None:
    """The real generate step claims a slot before torch looks for CUDA (where none works
    it runs on the CPU, gpu_fallback: cpu)."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["generation"] = {**config["generation"], "gpu": 1}
    config["gpu_fallback"] = "cpu"
    workdir = copy_workflow(tmp_path / "gpu", config)
    run_snakemake(workdir, "results/images/city", env=slot_env(tmp_path, "0,1"))
    text = (workdir / "results" / "logs" / "generate" / "city.log").read_text()
    assert "GPU slot: CUDA_VISIBLE_DEVICES=0 (of 0,1)" in text, text
    on_cpu, on_gpu = "running on the CPU (gpu_fallback: cpu)", "GPU requested and available"
    assert on_cpu in text or on_gpu in text  # a machine with GPU 0: on it
    assert (tmp_path / "locks" / "gpu-0.lock").exists()
