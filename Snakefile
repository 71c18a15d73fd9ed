"""Prompts -> Stable Diffusion images -> OpenCV tensors -> CNN predictions.

Run with `snakemake --cores N`; the configuration is config/config.yaml,
documented in config/README.md and checked against config/schema.yaml.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/classify.smk"
include: "rules/summary.smk"
include: "rules/manifest.smk"
include: "rules/report.smk"


from sdcnn.rst import register_jinja_filters

register_jinja_filters()  # report/*.rst escape what users wrote with `| rst`, `| rst_literal`


rule all:
    default_target: True
    input:
        get_final_outputs(),
