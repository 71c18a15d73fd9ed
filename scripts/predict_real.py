"""Snakemake entry point: classify one shard of real images (one model load), one JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.core.resources import gpus_requested  # noqa: E402
from sdcnn.workflow.step import snakemake_step, warn_if_threads_differ  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
# gpus: claims a free GPU of the machine's, if any
with snakemake_step(smk, threads=params.threads, gpus=gpus_requested(smk.resources)) as step:
    from sdcnn.evaluate.real_prediction import predict_real_shard

    warn_if_threads_differ("classifier.threads", params.threads, smk.threads, step)
    predict_real_shard(
        {
            image_id: {"path": path, "label": params.labels_of[image_id]}
            for image_id, path in params.images.items()
        },
        smk.input.tensors,
        smk.output[0],
        shard=smk.wildcards.real_shard,
        backend=params.backend,
        weights_path=smk.input.weights,
        labels=params.labels,
        gpus=gpus_requested(smk.resources),
        # not a param: what a job does where no GPU works, not what it computes
        gpu_fallback=smk.config["gpu_fallback"],
        threads=params.threads,
        julia_project=Path(smk.scriptdir).parent / "julia",
    )
