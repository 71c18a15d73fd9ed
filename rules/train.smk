rule train_classifier:
    input:
        **get_training_tensors(),
    output:
        weights=TRAINED_WEIGHTS_PATH,
        metrics=f"{TRAINING_DIR}/metrics.json",
        curve=report(
            f"{TRAINING_DIR}/curve.png",
            caption="../report/training_curve.rst",
            category="Training",
            labels={"figure": "training curve"},
        ),
        confusion=report(
            f"{TRAINING_DIR}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Training",
            labels={"figure": "held-out confusion matrix"},
        ),
    log:
        f"{RESULTS}/logs/train_classifier.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_classifier.tsv"
    conda:
        "../envs/train.yaml"
    threads: TRAINING["threads"]
    params:
        code=training_code(),
        prompts=labelled_prompts(),
        images=training_images(),
        labels=CLASSIFIER["labels"],
        settings=training_settings(),
        sharded=SHARDED,
    script:
        "../scripts/train_classifier.py"
