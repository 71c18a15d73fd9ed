# Training in two rules, so that training re-runs exactly when what it learns from changes.
# train_classifier reads its shards' tensor folders as ancient inputs: a shard that re-runs
# for an unlabelled prompt must not retrain. Snakemake then skips every other check of a
# job downstream of a re-run (its params too), so everything that decides the trained
# weights is the params of training_plan, a rule with no inputs that Snakemake always
# checks on its own; its plan.json is train_classifier's one normal input.


rule training_plan:
    output:
        TRAINING_PLAN,
    log:
        f"{RESULTS}/logs/training_plan.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    threads: 1
    params:
        # the code of training and of the steps that make its tensors (train_classifier's
        # own code trigger is not checked while its tensors are re-made)
        code={
            **package_code("generate.py"),
            **package_code("preprocess.py"),
            **package_code("train_classifier.py"),
        },
        prompts=PLAN.labelled_prompts,
        images=PLAN.training_images(GENERATION_RUNTIME, MODEL_PARAMS),
        labels=CLASSIFIER["labels"],
        settings=PLAN.training_settings(),
        sharded=SHARDED,
    script:
        "../scripts/training_plan.py"


rule train_classifier:
    input:
        unpack(get_training_inputs),
    output:
        weights=TRAINED_WEIGHTS_PATH,
        metrics=TRAINING_METRICS,
        curve=report(
            TRAINING_CURVE,
            caption="../report/training_curve.rst",
            category="Training",
            labels={"figure": "training curve"},
        ),
        confusion=report(
            TRAINING_CONFUSION,
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
        # what decides the weights is in the plan (input.plan); this only names the code
        code=package_code("train_classifier.py"),
    script:
        "../scripts/train_classifier.py"
