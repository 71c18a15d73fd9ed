"""Snakemake entry point: generate one shard's images with (at most) one pipeline load."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.core.resources import gpus_requested  # noqa: E402
from sdcnn.workflow.step import snakemake_step, warn_if_threads_differ  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
# not a param on purpose: whether a model may be downloaded never changes what it draws
allow_download = smk.config["model"]["allow_download"]
with snakemake_step(
    smk,
    threads=params.settings["threads"],
    offline=not allow_download,
    gpus=gpus_requested(smk.resources),  # claims a free GPU of the machine's, if any
) as step:
    from sdcnn.core.shards import ShardLayout
    from sdcnn.generate.image_store import store_from_config
    from sdcnn.generate.model_source import resolve_model_source
    from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
    from sdcnn.generate.shard_generator import generate_shard

    warn_if_threads_differ("generation.threads", params.settings["threads"], smk.threads, step)
    result = generate_shard(
        output_dir=smk.output[0],
        prompts=[PromptSpec(**prompt) for prompt in params.prompts],
        layout=ShardLayout(params.sharded),
        settings=GenerationSettings(**params.settings),
        model=resolve_model_source(params.model["source"]),
        allow_download=allow_download,
        gpus=gpus_requested(smk.resources),
        # not a param: what a job does where no GPU works, not what it computes
        gpu_fallback=smk.config["gpu_fallback"],
        # not a param on purpose: the store never changes an output, only saves recomputing it
        store=store_from_config(smk.config["store"]),
    )
    if result.flagged:
        shown = ", ".join(result.flagged[:10]) + (" ..." if len(result.flagged) > 10 else "")
        step.say(
            f"WARNING {smk.rule}[{smk.wildcards.shard}]: the model's safety checker flagged "
            f"{len(result.flagged)} image(s), which are now black: {shown}"
        )
