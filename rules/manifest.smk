from sdcnn.core.provenance import config_sha256


rule manifest:
    input:
        # the Julia environment's stamp (its versions) when the flux backend runs, the
        # training's metrics (they record its kernels) when the weights are trained
        **({"julia_stamp": JULIA_ENV_STAMP} if BACKEND == "flux" else {}),
        **({"training_metrics": TRAINING_METRICS} if PLAN.weights_mode == WEIGHTS_TRAINED else {}),
        outputs=PLAN.data_outputs(),
        predictions=PLAN.prediction_outputs(),
    output:
        MANIFEST,
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        "../envs/manifest.yaml"
    threads: 1
    params:
        code=package_code("manifest.py"),
        # with the prompts themselves (a sheet's rows, not its path): a sheet and the
        # mapping it holds have the same hash
        config_sha256=config_sha256({**OUTPUT_CONFIG, "prompts": PROMPTS}),
        snakemake_version=SNAKEMAKE_VERSION,
    script:
        "../scripts/manifest.py"
