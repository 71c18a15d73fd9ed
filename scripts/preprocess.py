"""Snakemake entry point: one prompt's PNGs -> float32 .npy tensors and preview PNGs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.preprocessing import preprocess_prompt

    preprocess_prompt(
        smk.input.images,
        smk.output.tensors,
        smk.output.previews,
        smk.params.image_ids,
        **smk.params.settings,
        threads=smk.threads,
    )
