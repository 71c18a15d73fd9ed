"""Snakemake entry point: one table (CSV and JSON) over every prompt's predictions,
in the config's order of the prompts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads) as step:
    from sdcnn.reporting.summary import accuracy_line, write_summary

    metrics = write_summary(
        smk.input.predictions, smk.output.csv, smk.output.json, smk.params.prompt_order
    )
    line = accuracy_line(metrics)
    if line:
        step.say(f"{line} (results/summary.csv)")
