"""Snakemake entry point: install and precompile the Flux backend's Julia packages once."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.core.resources import gpus_requested  # noqa: E402
from sdcnn.workflow.step import StepError, snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, gpus=gpus_requested(smk.resources)):  # CUDA.jl: on the job's GPU
    from sdcnn.classify.flux_backend import REMOTE_JULIA_PROJECT, instantiate_environment

    if not hasattr(smk.input, "project"):  # a remote module: no julia/ folder on disk
        raise StepError(REMOTE_JULIA_PROJECT)

    instantiate_environment(Path(smk.input.project).parent, smk.output[0])
