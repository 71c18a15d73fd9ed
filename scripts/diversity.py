"""Snakemake entry point: how different each prompt's images of a shard are (one JSON)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.core.fileio import write_json_atomic
    from sdcnn.core.shards import ShardLayout
    from sdcnn.evaluate.diversity import DiversitySettings, shard_diversity

    document = shard_diversity(
        smk.input.tensors,
        smk.params.images,
        ShardLayout(smk.params.sharded),
        DiversitySettings(**smk.params.settings),
    )
    write_json_atomic(smk.output[0], document)
