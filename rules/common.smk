"""Config validation, wildcard constraints and the input/params helpers of every rule.

What the config asks for is planned by sdcnn.config.plan (RunPlan, unit-tested); this
file wraps its values for Snakemake: wildcards, directory(), report(), ancient()."""

import os
import shutil
import sys
from pathlib import Path

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# The workflow's own files, wherever it is deployed (this file is rules/common.smk): never
# workflow.basedir, which is the *main* Snakefile's folder when this is a module. A clone
# or a local module has them in a folder (WORKFLOW_DIR); a remote module (github(), a
# git+file:// source) has none: Snakemake reads its files one by one through its source
# cache (workflow.source_path), and its Python package must be installed (checked here).
WORKFLOW_SOURCE = workflow.current_basedir
WORKFLOW_DIR = Path(WORKFLOW_SOURCE).parent if isinstance(WORKFLOW_SOURCE, os.PathLike) else None
if WORKFLOW_DIR is not None:  # its own sdcnn package, beside the rules
    sys.path.insert(0, str(WORKFLOW_DIR))
else:
    from sdcnn.workflow import deploy

    if type(WORKFLOW_SOURCE).__name__ == "LocalGitFile":
        deploy.let_local_git_join_source_files()
    with open(workflow.source_path("../pyproject.toml"), "rb") as project_file:
        if problem := deploy.remote_package_problem(project_file, WORKFLOW_SOURCE):
            raise WorkflowError(problem)

import sdcnn
from sdcnn.config.check import ConfigError, check_config, checked_real_images, load_schema
from sdcnn.config.plan import (
    DATASET_TAR,
    DIVERSITY_JSON,
    EVALUATION_CONFUSION,
    EVALUATION_JSON,
    INIT_WEIGHTS_PATH,
    JULIA_ENV_STAMP,
    MANIFEST,
    REAL_PREDICTIONS,
    REAL_TENSORS,
    RESULTS,
    RUN_INFO_HTML,
    SUMMARY_CSV,
    SUMMARY_HTML,
    SUMMARY_JSON,
    TRAINED_WEIGHTS_PATH,
    TRAINING_CONFUSION,
    TRAINING_CURVE,
    TRAINING_METRICS,
    TRAINING_PLAN,
    WEIGHTS_TRAINED,
    RunPlan,
    UnknownShard,
    prompt_id_pattern,
)
from sdcnn.classify.flux_backend import project_files
from sdcnn.config.prompts import checked_prompts
from sdcnn.core.provenance import output_config
from sdcnn.generate.model_identity import model_class_name, parse_time_identity
from sdcnn.generate.pipeline import GENERATION_LIBRARIES, planned_runtime
from sdcnn.workflow.backend import backend_of_run
from sdcnn.workflow.envs import conda_env, planned_versions
from sdcnn.workflow.step import StepError

PACKAGE_DIR = Path(sdcnn.__file__).parent  # the code the steps run, and whose digests count
SCHEMA_PATH = Path(workflow.source_path("../config/schema.yaml"))
SCHEMA = load_schema(SCHEMA_PATH)


def real_set_source(value):
    """evaluation.real as a path: the demo's real-like set is the package's folder (relative
    to the working directory where it is inside it, so that moving a clone re-runs nothing)."""
    from sdcnn.demo.real_set import DEMO_REAL, demo_real_folder

    if value != DEMO_REAL:
        return value
    folder = demo_real_folder()
    return os.path.relpath(folder) if folder.is_relative_to(Path.cwd()) else str(folder)


# Before any job: the config files Snakemake read, then the merged config against the
# schema (defaults filled in), then what a schema cannot check (model folder, weights),
# and the prompts: the mapping, or the rows of the prompt sheet it names.
try:
    check_config(config, SCHEMA_PATH, workflow.configfiles, workflow.config_settings.config)
    PROMPTS = checked_prompts(config, SCHEMA)
    # the real images (evaluation.real): each file checked (decoded, by default) in the main
    # process, before any job; a job's own parse only lists them
    REAL_SOURCE = real_set_source(config["evaluation"]["real"])
    REAL_IMAGES = (
        checked_real_images(
            REAL_SOURCE,
            config["classifier"]["labels"],
            config["evaluation"]["check"] if workflow.is_main_process else "none",
        )
        if REAL_SOURCE
        else []
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

GENERATION = config["generation"]
PREPROCESS = config["preprocess"]
CLASSIFIER = config["classifier"]
TRAINING = config["training"]
FIGURES = config["figures"]
# The unit of work of generate, preprocess, predict and figures: a shard of prompts
# (config `shards`), or, without shards, each prompt on its own (named after it).
PLAN = RunPlan(config, PROMPTS, REAL_IMAGES)
SHARDED = PLAN.sharded
SHARDS = PLAN.shards
JULIA_DIR = WORKFLOW_DIR / "julia" if WORKFLOW_DIR else None  # not in a remote module
REPORT_CSV_MAX_ROWS = 10_000  # a larger summary.csv is left out of the report


# (Listing the shard names as an alternation slows DAG building at 1,000 shards,
# benchmarks/RESULTS.md §5; an unknown name is reported when a job asks for its prompts.)
wildcard_constraints:
    shard=prompt_id_pattern(SCHEMA),
    real_shard=r"\d+-of-\d+",


def package_code(script):
    """{file: digest of its code} for the script and the package modules it imports: a
    params: value, so that changing what one of them does re-runs the step, and the
    dry-run reason shows which file changed (comments and docstrings do not count)."""
    from sdcnn.workflow.codedeps import code_digests

    name = f"scripts/{script}"  # a remote module's: Snakemake's copy of it
    path = WORKFLOW_DIR / name if WORKFLOW_DIR else workflow.source_path(f"../{name}")
    return code_digests(Path(path), PACKAGE_DIR, script_name=name)


def of_shard(plan_method):
    """An input/params function of the {shard} wildcard, from a RunPlan method."""

    def of_wildcards(wildcards):
        try:
            return plan_method(wildcards.shard)
        except UnknownShard as error:
            raise WorkflowError(str(error)) from None

    return of_wildcards


def of_real_shard(plan_method):
    """An input/params function of the {real_shard} wildcard, from a RunPlan method."""

    def of_wildcards(wildcards):
        try:
            return plan_method(wildcards.real_shard)
        except UnknownShard as error:
            raise WorkflowError(str(error)) from None

    return of_wildcards


get_shard_prompts = of_shard(PLAN.shard_prompt_specs)
shard_folder, shard_file = PLAN.shard_folder, PLAN.shard_file


def shard_file_output(kind, suffix):
    path = shard_file(kind, suffix)
    return directory(path) if SHARDED else path


def contact_sheet_output():
    """One contact sheet PNG per prompt: the prompt's own file, or a shard's folder of them."""
    shown = {"caption": "../report/contact_sheet.rst", "category": "Contact sheets"}
    if SHARDED:
        folder = directory(shard_folder("contact_sheets"))
        return report(folder, patterns=["{prompt}.png"], labels={"prompt": "{prompt}"}, **shown)
    return report(shard_file("contact_sheets", ".png"), labels={"prompt": "{shard}"}, **shown)


def summary_csv_output():
    """summary.csv, in the report (a download) while it is small enough to embed."""
    path = SUMMARY_CSV
    if PLAN.image_count() > REPORT_CSV_MAX_ROWS:
        return path
    labels = {"table": "summary.csv (download)"}
    return report(path, caption="../report/summary_csv.rst", category="Summary", labels=labels)


# ---- what a job runs with: its GPUs, its environment, its model, its backend


def requested_gpus(rule, configured):
    """The GPUs a rule's jobs get: the config's request, or what --set-resources (a
    profile's set-resources) makes it under the rule's name here (a module's `as`),
    capped by the run's --resources gpu= (as Snakemake caps every job's)."""
    from sdcnn.core.resources import resource_number

    rename = getattr(workflow.modifier, "local_rulename_modifier", None)
    name = rename(rule) if callable(rename) else rule
    settings = workflow.resource_settings
    overwritten = settings.overwrite_resources.get(name) or {}
    gpus = resource_number(overwritten, "gpu", configured)
    return min(gpus, resource_number(settings.resources or {}, "gpu", gpus))


WITH_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
GENERATE_ENV = conda_env("generate", requested_gpus("generate", GENERATION["gpu"]))
# generate's params and the training plan's: the device its GPU request gives, the dtype,
# the libraries' versions (with --sdm conda, GENERATE_ENV's pins)
GENERATION_RUNTIME = planned_runtime(
    gpus=requested_gpus("generate", GENERATION["gpu"]),
    precision=GENERATION["precision"],
    model_class=model_class_name(config["model"]["source"]),  # auto: the family's dtype
    versions=planned_versions(
        GENERATION_LIBRARIES,
        workflow.source_path(GENERATE_ENV) if WITH_CONDA else None,
    ),
)
MODEL_PARAMS = parse_time_identity(config["model"]["source"])  # what the model is


def get_training_inputs(wildcards):
    """train_classifier's plan (rules/train.smk), and the tensor folders of the shards
    that hold labelled prompts as ancient inputs: a shard re-run for an unlabelled prompt
    must not retrain (what decides the labelled images is in the plan)."""
    tensors = {
        f"tensors_{s}": ancient(PLAN.of_shard(shard_folder("tensors"), s))
        for s in PLAN.labelled_shards()
    }
    return {"plan": TRAINING_PLAN, **tensors}


try:  # classifier.backend, auto resolved by the main process (sdcnn/workflow/backend.py)
    BACKEND = backend_of_run(
        CLASSIFIER["backend"],
        main_process=workflow.is_main_process,
        environ=os.environ,  # this process's only, and its jobs' (envvars: below)
        julia_found=WITH_CONDA or shutil.which("julia") is not None,
        julia_project=JULIA_DIR is not None,
    )
except StepError as error:  # before any job runs: one clear message
    raise WorkflowError(f"classifier.backend: {error}") from None
PREDICT_ENV = conda_env("predict", requested_gpus("predict", CLASSIFIER["gpu"]), BACKEND)
# the Flux backend's code and installed environment (nothing for torch)
JULIA_INPUTS = [JULIA_ENV_STAMP, *project_files(JULIA_DIR)] if BACKEND == "flux" else []
OUTPUT_CONFIG = output_config(config)  # less what never changes an output


envvars:
    "SDCNN_BACKEND_DECISION",  # the backend decision, to every job
