"""Choosing the prediction backend: torch, flux, auto; and flux where there is no Julia."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from sdcnn.classify.flux_backend import predict_batches_flux, predict_command, prediction_plan
from sdcnn.classify.prediction import (
    ShardPrediction,
    predict_prompt,
    resolve_backend,
)
from sdcnn.core.errors import StepError
from sdcnn.core.shards import PromptBatch
from sdcnn.workflow.backend import BACKEND_DECISION_VARIABLE, backend_decision, decided_backend
from tests.support import make_golden
from tests.support.configs import SMALL_CONFIG
from tests.support.job_plan import dry_run
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow


@pytest.mark.parametrize(
    "requested, found, project, expected",
    [
        ("torch", False, False, "torch"),
        ("torch", True, True, "torch"),
        ("flux", True, True, "flux"),
        ("auto", False, True, "torch"),
        ("auto", True, False, "torch"),  # julia, but a remote module: no julia/ on disk
        ("auto", False, False, "torch"),
        ("auto", True, True, "flux"),  # not waiting for instantiate_julia: a job of the run
    ],
)
def test_resolve_backend(requested: str, found: bool, project: bool, expected: str) -> None:
    assert resolve_backend(requested, julia_found=found, julia_project=project) == expected


def test_flux_without_julia_names_the_missing_julia() -> None:
    with pytest.raises(StepError, match="no `julia` executable is on PATH"):
        resolve_backend("flux", julia_found=False)
    with pytest.raises(StepError, match="classifier.backend must be one of"):
        resolve_backend("jax", julia_found=True)


def test_flux_in_a_remote_module_names_the_missing_julia_folder() -> None:
    with pytest.raises(StepError, match="needs the workflow's julia/ folder on disk"):
        resolve_backend("flux", julia_found=True, julia_project=False)


@pytest.mark.parametrize(
    "requested, variable, expected",
    [
        ("auto", "auto=flux", "flux"),
        ("auto", "auto=torch", "torch"),
        ("flux", "flux=flux", "flux"),
        ("torch", "auto=flux", None),  # another config's decision
        ("auto", "auto=jax", None),
        ("auto", "", None),
        ("auto", None, None),
    ],
)
def test_a_job_takes_the_main_process_decision_for_its_own_config(
    requested: str, variable: str | None, expected: str | None
) -> None:
    environ = {} if variable is None else {BACKEND_DECISION_VARIABLE: variable}
    assert decided_backend(requested, environ) == expected
    resolved = expected or "torch"
    decision = {BACKEND_DECISION_VARIABLE: backend_decision(requested, resolved)}
    assert decided_backend(requested, decision) == resolved


def test_predict_command_is_an_argument_list_and_the_plan_holds_the_rest() -> None:
    command = predict_command(
        julia="/opt/julia/bin/julia",
        project_dir=Path("/wf/julia"),
        plan_path="/tmp/sdcnn-plan-x/plan.json",
        threads=2,
    )
    assert command == [
        "/opt/julia/bin/julia",
        "--project=/wf/julia",
        "--threads=2",
        "--startup-file=no",
        "/wf/julia/predict.jl",
        "--plan",
        "/tmp/sdcnn-plan-x/plan.json",
    ]
    batches = [
        PromptBatch(
            "city",
            ["city_000", "city_001"],
            ["results/tensors/s/city/city_000.npy", "results/tensors/s/city/city_001.npy"],
        ),
        PromptBatch(
            "bike", ["bike_000"], ["results/tensors/s/bike/bike_000.npy"], [True], "ship", ["train"]
        ),
    ]
    plan = prediction_plan(
        ShardPrediction(
            batches=batches,
            weights_path="results/weights/cnn.safetensors",
            labels=["cat", "--odd label; rm -rf /"],
            path_of=lambda prompt_id: Path("results/predictions/.s.tmp") / f"{prompt_id}.json",
            gpus=0,
            threads=1,
            gpu_fallback="cpu",
        )
    )
    assert plan == {
        "schema": "sdcnn-predict-plan/1",
        "weights": "results/weights/cnn.safetensors",
        "labels": ["cat", "--odd label; rm -rf /"],
        "gpus": 0,
        "gpu_fallback": "cpu",
        "prompts": [
            {
                "prompt_id": "city",
                "output": "results/predictions/.s.tmp/city.json",
                "tensors": [
                    "results/tensors/s/city/city_000.npy",
                    "results/tensors/s/city/city_001.npy",
                ],
                "safety_flagged": [None, None],
                "label": None,
                "splits": None,
            },
            {
                "prompt_id": "bike",
                "output": "results/predictions/.s.tmp/bike.json",
                "tensors": ["results/tensors/s/bike/bike_000.npy"],
                "safety_flagged": [True],
                "label": "ship",
                "splits": ["train"],
            },
        ],
    }


def test_flux_job_without_julia_fails_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-job check: a clear error naming `julia`, no JSON."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(REPO)
    output = tmp_path / "gray8.json"
    golden = f"{make_golden.GOLDEN_DIR}/gray8"
    with pytest.raises(StepError, match="`julia`"):
        predict_prompt(
            backend="flux",
            prompt_id="gray8",
            tensor_dir=f"{golden}/tensors",
            image_ids=["gray8_000", "gray8_001"],
            weights_path=f"{golden}/weights.safetensors",
            labels=["cat", "dog", "ship"],
            output_path=str(output),
            gpus=0,
            threads=1,
            julia_project=REPO / "julia",
        )
    assert not output.exists()


# A stand-in `julia` for the Python side's plumbing only: for each prompt of the plan it
# writes a JSON that records what NVIDIA_TF32_OVERRIDE the process was given (no prediction).
RECORDING_JULIA = f"""#!{sys.executable}
import json, os, sys
plan = json.load(open(sys.argv[sys.argv.index("--plan") + 1]))
for job in plan["prompts"]:
    record = {{"backend": "flux", "prompt_id": job["prompt_id"],
              "tf32_override": os.environ.get("NVIDIA_TF32_OVERRIDE", "unset")}}
    json.dump(record, open(job["output"], "w"))
"""


def test_flux_runs_julia_with_tf32_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA.jl's PEDANTIC_MATH leaves cuDNN free to use TF32: the variable turns it off."""
    julia = tmp_path / "bin" / "julia"
    julia.parent.mkdir()
    julia.write_text(RECORDING_JULIA)
    julia.chmod(julia.stat().st_mode | stat.S_IXUSR)
    project = tmp_path / "julia"
    project.mkdir()
    (project / "Project.toml").write_text("")
    monkeypatch.setenv("PATH", f"{julia.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "1")
    batches = [PromptBatch("city", ["city_000"], ["results/tensors/city/city_000.npy"])]
    shard = ShardPrediction(
        batches=batches,
        weights_path="results/weights/cnn.safetensors",
        labels=["cat"],
        path_of=lambda prompt_id: tmp_path / f"{prompt_id}.json",
        gpus=1,
        threads=1,
    )
    predict_batches_flux(shard, project_dir=project)
    document = json.loads((tmp_path / "city.json").read_text())
    assert document["tf32_override"] == "0"


def path_without_julia() -> str:
    """This process's PATH less every folder that holds a `julia` executable."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if not shutil.which("julia", path=f))


def with_backend(backend: str) -> dict:
    config = copy.deepcopy(SMALL_CONFIG)
    config["classifier"]["backend"] = backend
    return config


def snakemake_env(path: str) -> dict[str, str]:
    return {**os.environ, "PATH": path}


@pytest.mark.pipeline
def test_flux_without_julia_stops_before_any_job(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf", with_backend("flux"))
    env_path = path_without_julia()
    result = run_snakemake(workdir, check=False, env=snakemake_env(env_path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "classifier.backend" in output and "no `julia` executable is on PATH" in output
    assert "Traceback" not in output
    assert not (workdir / "results").exists()  # no job ran, nothing was written


def config_file(folder: Path, config: dict) -> str:
    """``config`` as a file for ``--configfile``: the small run is planned again, unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(path)


@pytest.mark.pipeline
def test_auto_without_julia_is_torch_and_reruns_nothing(small_run: Path, tmp_path: Path) -> None:
    configfile = config_file(tmp_path, with_backend("auto"))
    env = snakemake_env(path_without_julia())
    plan, _ = dry_run(small_run, "--configfile", configfile, env=env)
    # the manifest records the config's hash, so it alone may run again
    assert not set(plan.counts) - AGGREGATES
    for prompt_id in SMALL_CONFIG["prompts"]:
        document = json.loads((small_run / f"results/predictions/{prompt_id}.json").read_text())
        assert document["backend"] == "torch"


def stand_in_julia(folder: Path) -> Path:
    """An executable named `julia` that fails loudly if anything ever runs it.

    It only lets the workflow plan a flux run on a machine without Julia (a dry run
    executes nothing); it computes nothing and stands in for no result.
    """
    folder.mkdir(parents=True, exist_ok=True)
    julia = folder / "julia"
    julia.write_text("#!/bin/sh\necho 'stand-in julia: not meant to run' >&2\nexit 99\n")
    julia.chmod(julia.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.pipeline
def test_switching_to_flux_plans_only_the_julia_setup_and_predict(
    small_run: Path, tmp_path: Path
) -> None:
    configfile = config_file(tmp_path, with_backend("flux"))
    path = f"{stand_in_julia(tmp_path / 'bin')}{os.pathsep}{path_without_julia()}"
    plan, result = dry_run(small_run, "--configfile", configfile, env=snakemake_env(path))
    assert {rule: n for rule, n in plan.counts.items() if rule not in AGGREGATES} == {
        "instantiate_julia": 1,
        "predict": 2,
        "predict_real": 2,  # the small run's two real shards, through the same backend
        "figures": 2,  # each prompt's pictures follow its predictions
        "dataset": 2,  # and its records in the data set
    }
    # a job where predict runs (its GPU request, its SLURM partition), not on the login node
    assert "\nrule instantiate_julia:" in result.stdout, result.stdout
    assert "localrule instantiate_julia:" not in result.stdout


@pytest.mark.pipeline
def test_a_job_parsing_the_workflow_again_takes_the_runs_decision(
    small_run: Path, tmp_path: Path
) -> None:
    """`auto` is decided once, by the run's main process: a cluster job that parses the
    workflow again (--mode remote, as in a SLURM job) on a host where `julia` is on PATH
    keeps the main process's torch, while a main process there would choose flux."""
    configfile = config_file(tmp_path, with_backend("auto"))
    path = f"{stand_in_julia(tmp_path / 'bin')}{os.pathsep}{path_without_julia()}"
    env = {**snakemake_env(path), BACKEND_DECISION_VARIABLE: "auto=torch"}
    main, _ = dry_run(small_run, "--configfile", configfile, env=env)
    assert main.counts.get("instantiate_julia") == 1  # julia found: flux
    # a job (--mode remote) runs no logger plugin: its plan is read from what it prints
    job = run_snakemake(
        small_run, "--dry-run", "--mode", "remote", "--configfile", configfile, env=env
    )
    assert not set(printed_job_stats(job.stdout)) - AGGREGATES, job.stdout


# made from every prediction (or the whole config): may re-run
AGGREGATES = {"summary", "manifest", "all", "total", "summary_page", "run_info"}
AGGREGATES |= {"evaluation_figure"}  # made from the summary's scores of the real images


def printed_job_stats(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table a dry run prints, as {rule: count} (empty: nothing to do):
    for a run in --mode remote, which skips logger plugins (tests/support/job_plan.py)."""
    if "Job stats:" not in dry_run_output:
        assert "Nothing to be done" in dry_run_output
        return {}
    lines = dry_run_output.split("Job stats:", 1)[1].splitlines()
    jobs = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        jobs[parts[0]] = int(parts[1])
    return jobs
