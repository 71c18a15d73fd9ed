rule summary:
    input:
        predictions=expand(f"{RESULTS}/predictions/{{prompt}}.json", prompt=PROMPTS),
        code=package_modules("summary.py"),
    output:
        csv=f"{RESULTS}/summary.csv",
        json=f"{RESULTS}/summary.json",
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/summary.yaml"
    threads: 1
    script:
        "../scripts/summary.py"
