rule figures:
    input:
        images=f"{RESULTS}/images/{{prompt}}",
        previews=f"{RESULTS}/previews/{{prompt}}",
        predictions=f"{RESULTS}/predictions/{{prompt}}.json",
    output:
        charts=report(
            directory(f"{RESULTS}/charts/{{prompt}}"),
            patterns=["{image}.png"],
            caption="../report/probabilities.rst",
            category="Probabilities",
            subcategory="{prompt}",
            labels={"image": "{image}"},
        ),
        contact_sheet=report(
            f"{RESULTS}/contact_sheets/{{prompt}}.png",
            caption="../report/contact_sheet.rst",
            category="Contact sheets",
            labels={"prompt": "{prompt}"},
        ),
    log:
        f"{RESULTS}/logs/figures/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures/{{prompt}}.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("figures.py"),
        prompt=get_prompt,
        image_ids=get_image_ids,
    script:
        "../scripts/figures.py"


rule summary_page:
    input:
        summary=f"{RESULTS}/summary.json",
    output:
        report(
            f"{RESULTS}/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "all images"},
        ),
    log:
        f"{RESULTS}/logs/summary_page.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("summary_page.py"),
    script:
        "../scripts/summary_page.py"


rule run_info:
    input:
        manifest=f"{RESULTS}/manifest.json",
    output:
        report(
            f"{RESULTS}/run_info.html",
            caption="../report/run_info.rst",
            category="Run info",
            labels={"page": "configuration and package versions"},
        ),
    log:
        f"{RESULTS}/logs/run_info.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("run_info.py"),
        config=output_config(),
    script:
        "../scripts/run_info.py"
