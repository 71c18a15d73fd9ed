rule generate:
    input:
        **model_input(),
    output:
        report(
            directory(f"{RESULTS}/images/{{prompt}}"),
            patterns=["{image}.png"],
            caption="../report/generated.rst",
            category="Images",
            subcategory="{prompt}",
            labels={"image": "{image}", "stage": "generated"},
        ),
    log:
        f"{RESULTS}/logs/generate/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{prompt}}.tsv"
    conda:
        "../envs/diffusion.yaml"
    threads: GENERATION["threads"]
    resources:
        gpu=GENERATION["gpu"],
    params:
        code=package_code("generate.py"),
        prompt=get_prompt,
        seeds=get_image_seeds,
        settings=generation_settings(),
        model=model_params(),
        precision=GENERATION["precision"],
        threads=GENERATION["threads"],
    script:
        "../scripts/generate.py"
