"""Snakemake entry point: a shard's probability charts and contact sheets (one matplotlib
start for all), and a summary line per prompt on the console."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

MAX_CONSOLE_LINES = 10  # per shard; the rest are in the job's log

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads) as step:
    import json
    import logging

    from sdcnn.core.shards import ShardLayout
    from sdcnn.reporting.figures import write_shard_figures

    lines = write_shard_figures(
        prompts=smk.params.prompts,
        layout=ShardLayout(smk.params.sharded),
        predictions=smk.input.predictions,
        image_dir=smk.input.images,
        preview_dir=smk.input.previews,
        charts_dir=smk.output.charts,
        contact_sheets=smk.output.contact_sheets,
        charts=smk.params.charts,
        sheets=smk.params.sheets,
        sheet_images=smk.params.sheet_images,
        diversity=json.loads(Path(smk.input.diversity).read_text(encoding="utf-8")),
    )
    for line in lines:
        logging.getLogger("sdcnn").info("%s", line)
    for line in lines[:MAX_CONSOLE_LINES]:
        step.say(line)
    if len(lines) > MAX_CONSOLE_LINES:
        step.say(f"... and {len(lines) - MAX_CONSOLE_LINES} more prompts (in the figures log)")
