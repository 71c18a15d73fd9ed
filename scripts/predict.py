"""Snakemake entry point: classify one shard's tensors (one model load), a JSON per prompt."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.core.resources import gpus_requested  # noqa: E402
from sdcnn.workflow.step import snakemake_step, warn_if_threads_differ  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
# gpus: claims a free GPU of the machine's, if any
with snakemake_step(smk, threads=params.threads, gpus=gpus_requested(smk.resources)) as step:
    from sdcnn.classify.prediction import predict_shard, with_truth
    from sdcnn.core.shards import ShardLayout, shard_batches
    from sdcnn.generate.safety_checker import with_verdicts

    warn_if_threads_differ("classifier.threads", params.threads, smk.threads, step)
    layout = ShardLayout(params.sharded)
    predict_shard(
        backend=params.backend,
        batches=with_truth(
            with_verdicts(
                shard_batches(smk.input.tensors, params.images, layout), smk.input.images, layout
            ),
            params.truth,
        ),
        weights_path=smk.input.weights,
        labels=params.labels,
        output=smk.output[0],
        layout=layout,
        gpus=gpus_requested(smk.resources),
        # not a param: what a job does where no GPU works, not what it computes
        gpu_fallback=smk.config["gpu_fallback"],
        threads=params.threads,
        julia_project=Path(smk.scriptdir).parent / "julia",
    )
