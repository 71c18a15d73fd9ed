import functools

from sdcnn.workflow.report import report_param


rule figures:
    input:
        images=shard_folder("images"),
        previews=shard_folder("previews"),
        predictions=shard_file("predictions", ".json"),
        diversity=DIVERSITY_JSON,  # its low-diversity prompts get their contact sheets first
    output:
        charts=report(
            directory(shard_folder("charts")),
            # relative to the shard's folder
            patterns=["{prompt}/{image}.png"] if SHARDED else ["{image}.png"],
            caption="../report/probabilities.rst",
            category="Probabilities",
            subcategory="{prompt}" if SHARDED else "{shard}",  # the image's prompt
            labels={"image": "{image}"},
        ),
        contact_sheets=contact_sheet_output(),
    log:
        f"{RESULTS}/logs/figures/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{shard}}.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("figures.py"),
        prompts=report_param(get_shard_prompts),  # short in the report's items
        sharded=SHARDED,
        charts=of_shard(functools.partial(PLAN.figures_share, "charts")),
        sheets=of_shard(functools.partial(PLAN.figures_share, "contact_sheets")),
        sheet_images=FIGURES["sheet_images"],
    script:
        "../scripts/figures.py"


rule summary_page:
    input:
        summary=SUMMARY_CSV,  # streamed: the JSON would be read whole
    output:
        report(
            SUMMARY_HTML,
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "all images"},
        ),
    log:
        f"{RESULTS}/logs/summary_page.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary_page.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("summary_page.py"),
    script:
        "../scripts/summary_page.py"


rule run_info:
    input:
        manifest=MANIFEST,
    output:
        report(
            RUN_INFO_HTML,
            caption="../report/run_info.rst",
            category="Run info",
            labels={"page": "configuration and package versions"},
        ),
    log:
        f"{RESULTS}/logs/run_info.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_info.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("run_info.py"),
        config=OUTPUT_CONFIG,
    script:
        "../scripts/run_info.py"
