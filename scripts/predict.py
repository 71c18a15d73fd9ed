"""Snakemake entry point: classify one prompt's batch of tensors, write its JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.device import gpus_requested  # noqa: E402
from sdcnn.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
with snakemake_step(smk, threads=params.threads):
    from sdcnn.prediction import predict_prompt

    predict_prompt(
        backend=params.backend,
        prompt_id=smk.wildcards.prompt,
        tensor_dir=smk.input.tensors,
        image_ids=params.image_ids,
        weights_path=smk.input.weights,
        labels=params.labels,
        output_path=smk.output[0],
        gpus=gpus_requested(smk.resources),
        threads=params.threads,
        julia_project=Path(smk.scriptdir).parent / "julia",
    )
