# Is the data set any good: the real images of evaluation.real through the same preprocess
# and predict as the synthetic ones, in shards of their own (results/real/), and how
# different each prompt's images are from each other (results/diversity/). The summary
# rule scores them (results/evaluation/metrics.json); real images never reach training.


rule diversity:
    input:
        tensors=shard_folder("tensors"),
    output:
        DIVERSITY_JSON,
    log:
        f"{RESULTS}/logs/diversity/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/diversity/{{shard}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    params:
        code=package_code("diversity.py"),
        images=of_shard(PLAN.shard_images),
        settings=PLAN.diversity_settings(),
        sharded=SHARDED,
    script:
        "../scripts/diversity.py"


rule preprocess_real:
    input:
        images=of_real_shard(PLAN.real_shard_files),
    output:
        tensors=directory(REAL_TENSORS),
    log:
        f"{RESULTS}/logs/preprocess_real/{{real_shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess_real/{{real_shard}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: PREPROCESS["threads"]
    params:
        code=package_code("preprocess_real.py"),
        images=of_real_shard(PLAN.real_shard_paths),
        settings=PLAN.preprocess_settings(),
    script:
        "../scripts/preprocess_real.py"


rule predict_real:
    input:
        tensors=REAL_TENSORS,
        weights=PLAN.weights_path(),
        julia=JULIA_INPUTS,
    output:
        REAL_PREDICTIONS,
    log:
        f"{RESULTS}/logs/predict_real/{{real_shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict_real/{{real_shard}}.tsv"
    conda:
        PREDICT_ENV
    threads: CLASSIFIER["threads"]
    resources:
        gpu=CLASSIFIER["gpu"],
    params:
        code=package_code("predict_real.py"),
        images=of_real_shard(PLAN.real_shard_paths),
        labels_of=of_real_shard(PLAN.real_shard_labels),
        labels=CLASSIFIER["labels"],
        backend=BACKEND,
        threads=CLASSIFIER["threads"],
    script:
        "../scripts/predict_real.py"


rule evaluation_figure:
    input:
        metrics=EVALUATION_JSON,
    output:
        report(
            EVALUATION_CONFUSION,
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"figure": "real images' confusion matrix"},
        ),
    log:
        f"{RESULTS}/logs/evaluation_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluation_figure.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        code=package_code("evaluation_figure.py"),
    script:
        "../scripts/evaluation_figure.py"
