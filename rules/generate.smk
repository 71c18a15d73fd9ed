rule generate:
    input:
        **model_input(),
    output:
        directory(shard_folder("images")),  # in the report through the contact sheets
    log:
        f"{RESULTS}/logs/generate/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{shard}}.tsv"
    conda:
        diffusion_conda_env()
    threads: GENERATION["threads"]
    resources:
        gpu=GENERATION["gpu"],
    params:
        code=package_code("generate.py"),
        prompts=get_shard_prompts,
        settings=generation_settings(),
        runtime=generation_runtime(),
        model=model_params(),
        sharded=SHARDED,
    script:
        "../scripts/generate.py"
