"""The Flux.jl backend, run as a program: ``julia --project=julia julia/predict.jl …``.

pyjulia is not used (its development moved to PythonCall.jl/juliacall), and
Snakemake's ``script:`` directive cannot select a Julia project environment
(Snakemake issue #2215), so the predict step starts one ``julia`` process per
shard, with an argument list, never a shell string.  Julia's start-up and
package loading are paid once per shard.  The contract the Julia code follows
is docs/equivalence.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import dumps_json, write_bytes_atomic

if TYPE_CHECKING:
    from sdcnn.classify.prediction import ShardPrediction

log = logging.getLogger(__name__)

JULIA = "julia"
MISSING_JULIA = (
    "the flux backend needs Julia, but no `julia` executable is on PATH: install Julia "
    "(>= 1.10, https://julialang.org/downloads/) and set up its environment once with "
    "`snakemake --cores 1 instantiate_julia`, run with `--sdm conda`, or set "
    "classifier.backend to torch (or auto)"
)
# backend flux (or instantiate_julia) where the workflow's julia/ folder is not on disk
REMOTE_JULIA_PROJECT = (
    "the flux backend runs `julia --project=julia`, which needs the workflow's julia/ "
    "folder on disk; a remote module (github(), git+file://) has none: use the module "
    "from a clone (a local path), or set classifier.backend to torch (or auto)"
)
_TAIL_LINES = 20
PLAN_SCHEMA = "sdcnn-predict-plan/1"


def find_julia() -> str:
    """The ``julia`` executable on PATH; a StepError naming it when there is none."""
    julia = shutil.which(JULIA)
    if julia is None:
        raise StepError(MISSING_JULIA)
    return julia


def julia_base_command(julia: str, project_dir: Path, threads: int = 1) -> list[str]:
    """``julia`` with the project, a pinned thread count and no user start-up file."""
    return [julia, f"--project={project_dir}", f"--threads={threads}", "--startup-file=no"]


def predict_command(*, julia: str, project_dir: Path, plan_path: str, threads: int) -> list[str]:
    """The argument list of one ``julia/predict.jl`` run over a plan (see its header)."""
    command = julia_base_command(julia, project_dir, threads)
    return [*command, str(project_dir / "predict.jl"), "--plan", plan_path]


def prediction_plan(shard: ShardPrediction) -> dict[str, Any]:
    """What one Julia process is asked to do: every prompt's batch of a shard.

    A file rather than arguments: a shard of thousands of images would overflow the
    command line (ARG_MAX), and prompt text or paths never meet a shell either way.
    """
    return {
        "schema": PLAN_SCHEMA,
        "weights": str(shard.weights_path),
        "labels": list(shard.labels),
        "gpus": shard.gpus,
        "gpu_fallback": shard.gpu_fallback,
        "prompts": [
            {
                "prompt_id": batch.prompt_id,
                "output": str(shard.path_of(batch.prompt_id)),
                "tensors": list(batch.tensor_paths),
                "safety_flagged": list(batch.safety_flagged or [None] * len(batch.image_ids)),
                "label": batch.label,
                "splits": list(batch.splits) if batch.label is not None and batch.splits else None,
            }
            for batch in shard.batches
        ],
    }


def predict_environment() -> dict[str, str]:
    """This process's environment with TF32 off in NVIDIA's libraries: CUDA.jl's
    ``PEDANTIC_MATH`` still lets cuDNN run Float32 convolutions in TF32 on A100 and later
    (see ``exact_fp32_on_cuda`` in julia/src/SDCNN.jl); only this variable, read by
    cuBLAS and cuDNN themselves, turns it off.  No effect on the CPU."""
    return {**os.environ, "NVIDIA_TF32_OVERRIDE": "0"}


def run_julia(command: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run ``command`` (in ``env``, default this process's environment), log what it
    printed, return its stdout; a StepError if it fails.

    Julia's log records and errors go to stderr; the error names the exit status and
    quotes the end of stderr.
    """
    log.info("running %s", " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    except OSError as error:
        raise StepError(f"{what}: could not start {command[0]}: {error}") from error
    for stream in (result.stdout, result.stderr):
        for line in stream.splitlines():
            log.info("julia: %s", line)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-_TAIL_LINES:])
        raise StepError(f"{what}: julia exited with status {result.returncode}:\n{tail}")
    return result.stdout


def predict_batches_flux(shard: ShardPrediction, project_dir: Path) -> None:
    """The Flux backend for a shard: one Julia process (one start-up, one package load,
    one model) writes every prompt's JSON to ``shard.path_of(prompt_id)``, atomically."""
    julia = find_julia()
    if not (project_dir / "Project.toml").is_file():
        raise StepError(f"the flux backend's Julia project {project_dir}/Project.toml is missing")
    plan = prediction_plan(shard)
    with tempfile.TemporaryDirectory(prefix="sdcnn-plan-") as folder:
        plan_path = Path(folder) / "plan.json"
        plan_path.write_text(dumps_json(plan), encoding="utf-8")
        command = predict_command(
            julia=julia, project_dir=project_dir, plan_path=str(plan_path), threads=shard.threads
        )
        what = f"predict {len(shard.batches)} prompt(s) with flux"
        run_julia(command, what, env=predict_environment())
    for batch in shard.batches:
        output = shard.path_of(batch.prompt_id)
        try:
            document = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StepError(f"julia wrote no readable JSON to {output}: {error}") from error
        if document.get("backend") != "flux" or document.get("prompt_id") != batch.prompt_id:
            raise StepError(f"{output} is not the flux prediction of {batch.prompt_id}")
    log.info("%d prompts predicted with flux", len(shard.batches))


INSTANTIATE_CODE = (
    "using Pkg; Pkg.instantiate(); Pkg.precompile(); "
    'println("julia ", VERSION); Pkg.status(; mode = Pkg.PKGMODE_MANIFEST)'
)


def instantiate_environment(project_dir: Path, stamp_path: str) -> None:
    """Install and precompile the Julia project's packages once; record the versions.

    The stamp (Julia's version and the resolved package versions) is what the flux
    predict jobs depend on, and what ``classifier.backend: auto`` looks for.
    """
    julia = find_julia()
    command = [*julia_base_command(julia, project_dir), "-e", INSTANTIATE_CODE]
    versions = run_julia(command, "instantiate the Julia environment")
    write_bytes_atomic(stamp_path, versions.encode("utf-8"))


JULIA_PACKAGES = ("Flux", "NNlib", "CUDA", "cuDNN", "SafeTensors", "NPZ", "JSON3")


def versions_from_stamp(text: str) -> dict[str, str]:
    """Julia's and the backend packages' versions from the instantiate stamp.

    The stamp is ``julia <version>`` then ``Pkg.status`` of the manifest, whose lines
    read ``  [587475ba] Flux v0.16.5``.
    """
    versions = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "julia":
            versions["julia"] = words[1]
        elif len(words) >= 3 and words[0].startswith("[") and words[1] in JULIA_PACKAGES:
            versions[words[1]] = words[2].removeprefix("v")
    return versions


def project_files(julia_dir: Path) -> list[str]:
    """The Flux backend's code, relative to the working directory (moving the project
    folder changes no input): predict's inputs with the flux backend."""
    sources = sorted((julia_dir / "src").glob("*.jl"))
    project = [julia_dir / name for name in ("Project.toml", "predict.jl")]
    return [os.path.relpath(path) for path in [*project, *sources]]
