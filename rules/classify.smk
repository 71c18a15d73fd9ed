rule init_weights:
    output:
        INIT_WEIGHTS_PATH,
    log:
        f"{RESULTS}/logs/init_weights.log",
    conda:
        "../envs/predict-torch.yaml"
    threads: 1
    params:
        code=package_code("init_weights.py"),
        seed=CLASSIFIER["weights_seed"],
        architecture=PLAN.cnn_architecture(),
    script:
        "../scripts/init_weights.py"


rule predict:
    input:
        tensors=shard_folder("tensors"),
        images=shard_folder("images"),  # their safety-checker verdicts, in the PNGs
        weights=PLAN.weights_path(),
        julia=JULIA_INPUTS,
    output:
        shard_file_output("predictions", ".json"),
    log:
        f"{RESULTS}/logs/predict/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{shard}}.tsv"
    conda:
        PREDICT_ENV
    threads: CLASSIFIER["threads"]
    resources:
        gpu=CLASSIFIER["gpu"],
    params:
        code=package_code("predict.py"),
        images=of_shard(PLAN.shard_images),
        truth=of_shard(PLAN.shard_truth),
        labels=CLASSIFIER["labels"],
        backend=BACKEND,
        threads=CLASSIFIER["threads"],
        sharded=SHARDED,
    script:
        "../scripts/predict.py"


rule instantiate_julia:
    input:
        # the Julia project's file (none in a remote module)
        **({"project": os.path.relpath(JULIA_DIR / "Project.toml")} if JULIA_DIR else {}),
    output:
        JULIA_ENV_STAMP,
    log:
        f"{RESULTS}/logs/instantiate_julia.log",
    benchmark:
        f"{RESULTS}/benchmarks/instantiate_julia.tsv"
    conda:
        "../envs/julia.yaml"
    threads: 1
    resources:
        # a job where the predict jobs run, not the login node: CUDA.jl installs the CUDA
        # runtime its host's driver takes, and precompiles for that host
        gpu=CLASSIFIER["gpu"],
    params:
        code=package_code("instantiate_julia.py"),
    script:
        "../scripts/instantiate_julia.py"
