rule preprocess:
    input:
        images=shard_folder("images"),
    output:
        tensors=directory(shard_folder("tensors")),
        previews=directory(shard_folder("previews")),  # shown on the contact sheets
    log:
        f"{RESULTS}/logs/preprocess/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{shard}}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: PREPROCESS["threads"]
    params:
        code=package_code("preprocess.py"),
        images=of_shard(PLAN.shard_images),
        settings=PLAN.preprocess_settings(),
        sharded=SHARDED,
    script:
        "../scripts/preprocess.py"
