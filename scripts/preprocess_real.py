"""Snakemake entry point: one shard of real images -> float32 .npy tensors, as preprocess."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
# threads: Snakemake's reservation (the outputs are the same for any thread count)
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.evaluate.real_shard import preprocess_real_shard

    preprocess_real_shard(
        dict(zip(smk.params.images, smk.input.images, strict=True)),
        smk.output.tensors,
        **smk.params.settings,
        threads=smk.threads,
    )
