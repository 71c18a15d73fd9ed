rule preprocess:
    input:
        images=f"{RESULTS}/images/{{prompt}}",
    output:
        tensors=directory(f"{RESULTS}/tensors/{{prompt}}"),
        previews=report(
            directory(f"{RESULTS}/previews/{{prompt}}"),
            patterns=["{image}.png"],
            caption="../report/preprocessed.rst",
            category="Images",
            subcategory="{prompt}",
            labels={"image": "{image}", "stage": "preprocessed"},
        ),
    log:
        f"{RESULTS}/logs/preprocess/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{prompt}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: PREPROCESS["threads"]
    params:
        code=package_code("preprocess.py"),
        image_ids=get_image_ids,
        settings=preprocess_settings(),
    script:
        "../scripts/preprocess.py"
