"""Snakemake entry point: one table (CSV and JSON) over every prompt's predictions,
in the config's order of the prompts, with each prompt's diversity and, with real
images, their scores (results/evaluation/metrics.json)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 (the workflow's package)

from sdcnn.workflow.step import snakemake_step  # noqa: E402

smk = snakemake  # noqa: F821
with snakemake_step(smk, threads=smk.threads) as step:
    from sdcnn.core.fileio import write_json_atomic
    from sdcnn.evaluate.diversity_results import merge_documents, read_documents
    from sdcnn.evaluate.scores import RealCounts
    from sdcnn.reporting.summary import iter_predictions, run_line, write_summary

    prompt_order = smk.params.prompt_order
    real = RealCounts.from_documents(iter_predictions(smk.input.real)) if smk.input.real else None
    sections = write_summary(
        smk.input.predictions,
        smk.output.csv,
        smk.output.json,
        prompt_order,
        diversity=merge_documents(read_documents(smk.input.diversity), prompt_order),
        real=real,
    )
    if sections["evaluation"] is not None:
        write_json_atomic(smk.output.evaluation, sections["evaluation"])
    if line := run_line(sections):
        step.say(f"{line} ({smk.output.evaluation if real else smk.output.csv})")
