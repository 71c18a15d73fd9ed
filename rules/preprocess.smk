rule preprocess:
    input:
        images=shard_folder("images"),
    output:
        tensors=directory(shard_folder("tensors")),
        previews=report(
            directory(shard_folder("previews")),
            patterns=image_patterns(),
            caption="../report/preprocessed.rst",
            category="Images",
            subcategory=report_prompt(),
            labels={"image": "{image}", "stage": "preprocessed"},
        ),
    log:
        f"{RESULTS}/logs/preprocess/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{shard}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: PREPROCESS["threads"]
    params:
        code=package_code("preprocess.py"),
        images=get_shard_images,
        settings=preprocess_settings(),
        sharded=SHARDED,
    script:
        "../scripts/preprocess.py"
