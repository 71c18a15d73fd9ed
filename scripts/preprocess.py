"""Snakemake entry point: one shard's PNGs -> float32 .npy tensors and preview PNGs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
# threads: Snakemake's reservation (the outputs are the same for any thread count)
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.core.naming import image_ids
    from sdcnn.core.shards import ShardLayout
    from sdcnn.preprocess.image_to_tensor import preprocess_shard

    preprocess_shard(
        smk.input.images,
        smk.output.tensors,
        smk.output.previews,
        {prompt_id: image_ids(prompt_id, n) for prompt_id, n in smk.params.images.items()},
        ShardLayout(smk.params.sharded),
        **smk.params.settings,
        threads=smk.threads,
    )
