rule manifest:
    input:
        unpack(get_julia_stamp_input),
        unpack(get_training_metrics_input),
        outputs=get_data_outputs(),
        predictions=get_prediction_outputs(),
    output:
        f"{RESULTS}/manifest.json",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        "../envs/manifest.yaml"
    threads: 1
    params:
        code=package_code("manifest.py"),
        config_sha256=config_hash(),
        snakemake_version=SNAKEMAKE_VERSION,
    script:
        "../scripts/manifest.py"
