"""Prompts -> Stable Diffusion images -> OpenCV tensors -> CNN predictions.

Run with `snakemake --cores N`; the configuration is config/config.yaml,
documented in config/README.md and checked against config/schema.yaml.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


# The rule files as source files beside this one: plain "rules/x.smk" strings would do, but
# for a git+file:// module at a repository's root, which Snakemake 9.27 joins into absolute
# paths (LocalGitFile.join); a source file is resolved from its full URI.
RULES = workflow.current_basedir.join("rules")


include: RULES.join("common.smk")
include: RULES.join("generate.smk")
include: RULES.join("preprocess.smk")
include: RULES.join("train.smk")
include: RULES.join("classify.smk")
include: RULES.join("evaluate.smk")
include: RULES.join("summary.smk")
include: RULES.join("manifest.smk")
include: RULES.join("report.smk")


from sdcnn.workflow.report import register_jinja_filters

register_jinja_filters()  # report/*.rst escape what users wrote with `| rst`, `| rst_literal`


rule all:
    default_target: True
    input:
        PLAN.final_outputs(),


# ---- who holds each lock (sdcnn/workflow/locks.py): recorded when a run starts executing, in
# the main process only (never in dry runs or cluster jobs), so that `python -m
# sdcnn.workflow.locks` (`make run`) can remove the locks of a run that was killed, and only
# those. Installed on the workflow object, not with `onstart:`, which Snakemake ignores in a
# module's Snakefile (`module x: ...; use rule * from x`); it registers handlers, writes nothing.
from sdcnn.workflow.locks import install_hooks

install_hooks(workflow)
