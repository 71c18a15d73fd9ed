rule init_weights:
    input:
        code=package_modules("init_weights.py"),
    output:
        INIT_WEIGHTS_PATH,
    log:
        f"{RESULTS}/logs/init_weights.log",
    conda:
        "../envs/predict-torch.yaml"
    threads: 1
    params:
        seed=CLASSIFIER["weights_seed"],
        architecture=cnn_architecture(),
    script:
        "../scripts/init_weights.py"


rule predict:
    input:
        tensors=f"{RESULTS}/tensors/{{prompt}}",
        weights=get_weights_path(),
        code=package_modules("predict.py"),
    output:
        f"{RESULTS}/predictions/{{prompt}}.json",
    log:
        f"{RESULTS}/logs/predict/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{prompt}}.tsv"
    conda:
        "../envs/predict-torch.yaml"
    threads: CLASSIFIER["threads"]
    params:
        image_ids=get_image_ids,
        labels=CLASSIFIER["labels"],
        backend=CLASSIFIER["backend"],
        gpus=0,
        threads=CLASSIFIER["threads"],
    script:
        "../scripts/predict.py"
