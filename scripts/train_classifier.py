"""Snakemake entry point: train the CNN on the labelled prompts' tensors (seeded)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.step import snakemake_step, warn_if_threads_differ  # noqa: E402

smk = snakemake  # noqa: F821
params = smk.params
with snakemake_step(smk, threads=params.settings["threads"]):
    from sdcnn.layout import ShardLayout
    from sdcnn.training import TrainingSettings, train_classifier

    warn_if_threads_differ("training.threads", params.settings["threads"], smk.threads)
    train_classifier(
        tensor_dirs=dict(smk.input.items()),
        prompts=params.prompts,
        labels=params.labels,
        layout=ShardLayout(params.sharded),
        settings=TrainingSettings(**params.settings),
        weights_path=smk.output.weights,
        metrics_path=smk.output.metrics,
        curve_path=smk.output.curve,
        confusion_path=smk.output.confusion,
    )
