rule preprocess:
    input:
        images=f"{RESULTS}/images/{{prompt}}",
        code=package_modules("preprocess.py"),
    output:
        tensors=directory(f"{RESULTS}/tensors/{{prompt}}"),
        previews=directory(f"{RESULTS}/previews/{{prompt}}"),
    log:
        f"{RESULTS}/logs/preprocess/{{prompt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{prompt}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: PREPROCESS["threads"]
    params:
        image_ids=get_image_ids,
        settings=preprocess_settings(),
    script:
        "../scripts/preprocess.py"
