rule generate:
    input:
        unpack(get_model_input),
        code=package_modules("generate.py"),
    output:
        directory(f"{RESULTS}/images/{{prompt}}"),
    log:
        f"{RESULTS}/logs/generate/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{prompt}}.tsv"
    conda:
        "../envs/diffusion.yaml"
    threads: GENERATION["threads"]
    params:
        prompt=get_prompt,
        seeds=get_image_seeds,
        settings=generation_settings(),
        model=model_params(),
        gpus=0,
        threads=GENERATION["threads"],
    script:
        "../scripts/generate.py"
