"""Prompts -> Stable Diffusion images -> OpenCV tensors -> CNN predictions.

Run with `snakemake --cores N`; the configuration is config/config.yaml,
documented in config/README.md and checked against config/schema.yaml.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


def rules_file(name):
    """rules/<name>.smk beside this file, as a source file: a "rules/..." string would
    do but for a git+file:// module at a repository's root, which Snakemake 9.27 joins
    into "/rules/..." (LocalGitFile.join); a source file is resolved from its full URI.
    """
    return workflow.current_basedir.join(f"rules/{name}.smk")


include: rules_file("common")
include: rules_file("generate")
include: rules_file("preprocess")
include: rules_file("train")
include: rules_file("classify")
include: rules_file("summary")
include: rules_file("manifest")
include: rules_file("report")


from sdcnn.rst import register_jinja_filters

register_jinja_filters()  # report/*.rst escape what users wrote with `| rst`, `| rst_literal`


rule all:
    default_target: True
    input:
        get_final_outputs(),
