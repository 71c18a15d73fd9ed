"""Snakemake entry point: the run's configuration, versions and files as an HTML page."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.reporting.pages import write_run_info

    write_run_info(smk.params.config, smk.input.manifest, smk.output[0])
