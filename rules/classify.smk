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
        julia=julia_inputs(),
    output:
        f"{RESULTS}/predictions/{{prompt}}.json",
    log:
        f"{RESULTS}/logs/predict/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{prompt}}.tsv"
    conda:
        predict_conda_env()
    threads: CLASSIFIER["threads"]
    params:
        image_ids=get_image_ids,
        labels=CLASSIFIER["labels"],
        backend=BACKEND,
        gpus=0,
        threads=CLASSIFIER["threads"],
    script:
        "../scripts/predict.py"


rule instantiate_julia:
    input:
        project=julia_project_file(),
        code=package_modules("instantiate_julia.py"),
    output:
        JULIA_ENV_STAMP,
    log:
        f"{RESULTS}/logs/instantiate_julia.log",
    benchmark:
        f"{RESULTS}/benchmarks/instantiate_julia.tsv"
    localrule: True
    conda:
        "../envs/julia.yaml"
    threads: 1
    script:
        "../scripts/instantiate_julia.py"
