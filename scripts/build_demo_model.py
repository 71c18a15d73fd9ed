"""Snakemake entry point: build the tiny random-weight demo pipeline (offline)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.step import snakemake_step  # noqa: E402

with snakemake_step(snakemake, threads=snakemake.threads):  # noqa: F821
    from sdcnn.demo_model import save_demo_pipeline

    save_demo_pipeline(snakemake.output[0], seed=snakemake.params.seed)  # noqa: F821
