rule summary:
    input:
        predictions=get_prediction_outputs(),
    output:
        csv=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary_csv.rst",
            category="Summary",
            labels={"table": "summary.csv (download)"},
        ),
        json=f"{RESULTS}/summary.json",
    log:
        f"{RESULTS}/logs/summary.log",
    localrule: True
    conda:
        "../envs/summary.yaml"
    threads: 1
    params:
        code=package_code("summary.py"),
        prompt_order=list(PROMPTS),
    script:
        "../scripts/summary.py"
