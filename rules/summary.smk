from sdcnn.workflow.report import ReportParam


rule summary:
    input:
        predictions=PLAN.prediction_outputs(),
        diversity=PLAN.per_shard(DIVERSITY_JSON),
        real=PLAN.real_prediction_outputs(),  # evaluation.real's, if any
    output:
        **({"evaluation": EVALUATION_JSON} if PLAN.evaluates else {}),
        csv=summary_csv_output(),
        json=SUMMARY_JSON,
        # the real images' scores against the held-out ones (a real set only)
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    localrule: True
    conda:
        "../envs/summary.yaml"
    threads: 1
    params:
        code=package_code("summary.py"),
        prompt_order=ReportParam(PROMPTS),  # short in the report's item
    script:
        "../scripts/summary.py"


rule dataset:
    input:
        images=shard_folder("images"),
        predictions=shard_file("predictions", ".json"),
    output:
        DATASET_TAR,
    log:
        f"{RESULTS}/logs/dataset/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset/{{shard}}.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("dataset.py"),
        prompts=get_shard_prompts,
        sharded=SHARDED,
    script:
        "../scripts/dataset.py"
