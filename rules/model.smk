rule build_demo_model:
    output:
        directory(DEMO_MODEL_DIR),
    log:
        f"{RESULTS}/logs/build_demo_model.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_demo_model.tsv"
    conda:
        "../envs/diffusion.yaml"
    threads: 1
    params:
        code=package_code("build_demo_model.py"),
        seed=MODEL["demo_seed"],
    script:
        "../scripts/build_demo_model.py"
