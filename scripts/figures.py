"""Snakemake entry point: a prompt's probability charts and contact sheet (one matplotlib
start for both), and its one summary line on the console."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads) as step:
    from sdcnn.plots import prompt_summary_line, write_contact_sheet, write_probability_charts

    write_probability_charts(smk.input.predictions, smk.output.charts, smk.params.image_ids)
    document = write_contact_sheet(
        prompt_id=smk.wildcards.prompt,
        prompt_text=smk.params.prompt["text"],
        negative_prompt=smk.params.prompt["negative_prompt"],
        predictions_path=smk.input.predictions,
        image_dir=smk.input.images,
        preview_dir=smk.input.previews,
        image_ids=smk.params.image_ids,
        output_path=smk.output.contact_sheet,
    )
    step.say(prompt_summary_line(document, smk.output.contact_sheet))
