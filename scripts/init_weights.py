"""Snakemake entry point: seeded Glorot-uniform CNN weights in safetensors."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads):
    from sdcnn.classify.weights import init_weights, save_weights

    save_weights(smk.output[0], init_weights(**smk.params.architecture, seed=smk.params.seed))
