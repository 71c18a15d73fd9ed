"""Snakemake entry point: train the CNN on the labelled prompts' tensors (its plan says how)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step, warn_if_threads_differ  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads) as step:
    from sdcnn.classify.training import (
        LabelledPrompts,
        TrainingOutputs,
        TrainingSettings,
        read_plan,
        train_classifier,
    )
    from sdcnn.core.shards import ShardLayout
    from sdcnn.reporting.figures import write_training_figures

    plan = read_plan(smk.input.plan)
    settings = TrainingSettings(**plan["settings"])
    warn_if_threads_differ("training.threads", settings.threads, smk.threads, step)
    metrics = train_classifier(
        LabelledPrompts(
            tensor_dirs={
                name.removeprefix("tensors_"): path
                for name, path in smk.input.items()
                if name.startswith("tensors_")
            },
            prompts=plan["prompts"],
            labels=plan["labels"],
            layout=ShardLayout(plan["sharded"]),
        ),
        settings,
        TrainingOutputs(weights=smk.output.weights, metrics=smk.output.metrics),
    )
    write_training_figures(metrics, smk.output.curve, smk.output.confusion)
