"""Snakemake entry point: train_classifier's plan, everything that decides its weights."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.classify.training import write_plan

    write_plan(smk.output[0], dict(smk.params.items()))
