rule generate:
    input:
        **PLAN.model_input(),
    output:
        directory(shard_folder("images")),  # in the report through the contact sheets
    log:
        f"{RESULTS}/logs/generate/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{shard}}.tsv"
    conda:
        GENERATE_ENV
    threads: GENERATION["threads"]
    resources:
        gpu=GENERATION["gpu"],
    params:
        code=package_code("generate.py"),
        prompts=get_shard_prompts,
        settings=PLAN.generation_settings(),
        runtime=GENERATION_RUNTIME,
        model=MODEL_PARAMS,
        sharded=SHARDED,
    script:
        "../scripts/generate.py"
