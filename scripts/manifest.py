"""Snakemake entry point: results/manifest.json (every output's sha256 and size, versions)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.reporting.manifest import write_manifest

    write_manifest(
        smk.output[0],
        smk.input.outputs,
        smk.input.predictions,
        smk.params.config_sha256,
        julia_stamp=smk.input.get("julia_stamp"),
        training_metrics=smk.input.get("training_metrics"),
        snakemake_version=smk.params.snakemake_version,
    )
