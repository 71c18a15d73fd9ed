"""Snakemake entry point: generate one prompt's images with one pipeline load."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.device import gpus_requested  # noqa: E402
from sdcnn.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
with snakemake_step(smk, threads=params.threads, offline=not params.model["allow_download"]):
    from sdcnn.generation import (
        GenerationSettings,
        PromptSpec,
        generate_prompt,
        resolve_model_source,
    )
    from sdcnn.imagestore import store_from_config

    generate_prompt(
        output_dir=smk.output[0],
        prompt=PromptSpec(prompt_id=smk.wildcards.prompt, **params.prompt),
        seeds=params.seeds,
        settings=GenerationSettings(**params.settings),
        model=resolve_model_source(params.model["source"], demo_dir=smk.input.get("model", "")),
        allow_download=params.model["allow_download"],
        gpus=gpus_requested(smk.resources),
        threads=params.threads,
        precision=params.precision,
        # not a param on purpose: the store never changes an output, only saves recomputing it
        store=store_from_config(smk.config["store"]),
    )
