"""Snakemake entry point: the summary table as an HTML page for the report."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.reporting.pages import write_summary_page

    write_summary_page(smk.input.summary, smk.output[0])
