"""Snakemake entry point: one bar chart of predicted probabilities per image of a prompt."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.plots import write_probability_charts

    write_probability_charts(smk.input.predictions, smk.output[0], smk.params.image_ids)
