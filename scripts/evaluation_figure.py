"""Snakemake entry point: the real images' confusion matrix, from the evaluation metrics."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    import json

    from sdcnn.reporting.figures import write_evaluation_figure

    evaluation = json.loads(Path(smk.input.metrics).read_text(encoding="utf-8"))
    write_evaluation_figure(evaluation, smk.output[0])
