"""Snakemake entry point: a shard's images and records as a WebDataset tar
(sdcnn.export.webdataset_tars)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    import logging

    from sdcnn.core.shards import ShardLayout
    from sdcnn.export.webdataset_tars import write_shard_dataset

    count = write_shard_dataset(
        prompts=smk.params.prompts,
        layout=ShardLayout(smk.params.sharded),
        predictions=smk.input.predictions,
        image_dir=smk.input.images,
        output_path=smk.output[0],
    )
    logging.getLogger("sdcnn").info("%d records in %s", count, smk.output[0])
