"""Config validation, wildcard constraints and the input/params helpers of every rule."""

import functools
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
# cache (workflow.source_path), and its Python package must be installed (check below).
WORKFLOW_SOURCE = workflow.current_basedir
WORKFLOW_DIR = (
    Path(WORKFLOW_SOURCE).parent if isinstance(WORKFLOW_SOURCE, os.PathLike) else None
)
if WORKFLOW_DIR is not None:  # its own sdcnn package, beside the rules
    sys.path.insert(0, str(WORKFLOW_DIR))


def remote_package_problem():
    """Why the installed sdcnn cannot serve this remote module's rules, or None."""
    import tomllib
    from importlib.util import find_spec

    with open(workflow.source_path("../pyproject.toml"), "rb") as project_file:
        wanted = tomllib.load(project_file)["project"]["version"]
    if find_spec("sdcnn") is None:
        found = "is not installed"
    else:
        from sdcnn import __version__ as found

        if found == wanted:
            return None
        found = f"is version {found}"
    return (
        f"this workflow is used as a module from {WORKFLOW_SOURCE}, version {wanted}; its "
        f"Python package sdcnn {found} in this environment: install the module's own, "
        "e.g. pip install 'git+https://github.com/<org>/sdcnn@<its tag>' (README: "
        "Deploying it elsewhere)"
    )


def let_local_git_join_source_files():
    """Snakemake 9.27's LocalGitFile.join takes a str only, but a rule's script reaches
    it as a LocalSourceFile (jobs.py, _path_to_source_file): every script: rule of a
    git+file:// module fails with a TypeError. Give it the str, as SourceFile.join does
    for the other kinds of source (this process only; a no-op once Snakemake does it).
    """
    from snakemake.sourcecache import LocalGitFile, SourceFile

    join = LocalGitFile.join
    if getattr(join, "takes_source_files", False):
        return

    def join_path_or_source_file(self, path):
        if isinstance(path, SourceFile):
            path = path.get_path_or_uri(secret_free=False)
        return join(self, path)

    join_path_or_source_file.takes_source_files = True
    LocalGitFile.join = join_path_or_source_file


if type(WORKFLOW_SOURCE).__name__ == "LocalGitFile":
    let_local_git_join_source_files()
if WORKFLOW_DIR is None and (problem := remote_package_problem()):
    raise WorkflowError(problem)

import sdcnn

# the code the steps run, and whose digests count
PACKAGE_DIR = Path(sdcnn.__file__).parent

from sdcnn.config.check import ConfigError, check_config, load_schema
from sdcnn.config.prompts import assign_shards, checked_prompts

SCHEMA_PATH = Path(workflow.source_path("../config/schema.yaml"))

# Before any job: the config files Snakemake read, then the merged config against the
# schema (defaults filled in), then what a schema cannot check (model folder, weights),
# and the prompts: the mapping, or the rows of the prompt sheet it names.
try:
    check_config(
        config, SCHEMA_PATH, workflow.configfiles, workflow.config_settings.config
    )
    PROMPTS = checked_prompts(config, load_schema(SCHEMA_PATH))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

GENERATION = config["generation"]
MODEL = config["model"]
PREPROCESS = config["preprocess"]
CLASSIFIER = config["classifier"]

# The unit of work of generate, preprocess, predict and figures: a shard of prompts
# (config `shards`), or, without shards, each prompt on its own (its shard is named
# after it).  Shard name -> its prompt ids, in the config's order.
SHARDED = config["shards"] is not None
SHARDS = assign_shards(PROMPTS, config["shards"])

PROMPT_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
RESULTS = "results"
INIT_WEIGHTS_PATH = f"{RESULTS}/weights/glorot.safetensors"
TRAINED_WEIGHTS_PATH = f"{RESULTS}/weights/trained.safetensors"
TRAINING_DIR = f"{RESULTS}/training"
TRAINING = config["training"]
# the Flux backend's Julia project: a folder on disk, not in a remote module
JULIA_DIR = WORKFLOW_DIR / "julia" if WORKFLOW_DIR else None
# Written once the Julia packages are installed: flux predict jobs need it.
JULIA_ENV_STAMP = f"{RESULTS}/julia/instantiated.txt"


# Shard names and prompt ids share the prompt id pattern of config/schema.yaml ("03-of-16"
# fits it): no slash, no "..", so a wildcard never spans folders.  (Listing the names
# themselves as an alternation costs seconds of DAG building at 1,000 shards; unknown
# names are reported by shard_prompt_ids() instead.)
wildcard_constraints:
    shard=PROMPT_ID_PATTERN,


# ---- code the steps import: edits to these re-run the step (Snakemake only watches the script)


def package_code(script):
    """{file: digest of its code} for the script and the package modules it imports: a
    params: value, so that changing what one of them does re-runs the step, and the
    dry-run reason shows which file changed (comments and docstrings do not count)."""
    from sdcnn.workflow.codedeps import code_digests

    name = f"scripts/{script}"  # a remote module's: Snakemake's copy of it
    path = WORKFLOW_DIR / name if WORKFLOW_DIR else workflow.source_path(f"../{name}")
    return code_digests(Path(path), PACKAGE_DIR, script_name=name)


# ---- shards and their prompts


def shard_prompt_ids(shard):
    if shard not in SHARDS:
        raise WorkflowError(
            f"{shard!r} is not a shard of this config"
            + (
                ""
                if SHARDED
                else " (without `shards`, each prompt id is its own shard)"
            )
        )
    return SHARDS[shard]


def get_shard_prompts(wildcards):
    """What decides the shard's images, prompt by prompt (a params: value, so editing one
    prompt re-runs its shard only): id, text, negative prompt, number of images."""
    return shard_prompt_specs(wildcards.shard)


@functools.cache
def shard_prompt_specs(shard):
    """Built once per shard: generate and figures both take them."""
    return [
        {
            "prompt_id": prompt_id,
            "text": PROMPTS[prompt_id]["text"],
            "negative_prompt": PROMPTS[prompt_id]["negative_prompt"],
            "n_images": PROMPTS[prompt_id]["n_images"],
        }
        for prompt_id in shard_prompt_ids(shard)
    ]


def get_shard_images(wildcards):
    """The shard's prompts and how many images each has: {prompt id: n_images}."""
    return {
        prompt_id: PROMPTS[prompt_id]["n_images"]
        for prompt_id in shard_prompt_ids(wildcards.shard)
    }


# ---- where a shard's outputs go: results/<kind>/<shard>/ holds one folder (or file) per
# prompt; without shards, results/<kind>/<prompt>/ (or <prompt>.json) is the prompt's own.


def shard_folder(kind):
    return f"{RESULTS}/{kind}/{{shard}}"


def shard_file(kind, suffix):
    """One file per prompt: the prompt's own file, or, with shards, a folder of them."""
    return shard_folder(kind) if SHARDED else f"{RESULTS}/{kind}/{{shard}}{suffix}"


def shard_file_output(kind, suffix):
    path = shard_file(kind, suffix)
    return directory(path) if SHARDED else path


def image_patterns():
    """Report patterns of an image folder's PNGs, relative to the shard's folder."""
    return ["{prompt}/{image}.png"] if SHARDED else ["{image}.png"]


def report_prompt():
    """The prompt a report item belongs to: a pattern wildcard with shards, else the shard."""
    return "{prompt}" if SHARDED else "{shard}"


def contact_sheet_output():
    """One contact sheet PNG per prompt: the prompt's own file, or a shard's folder of them."""
    shown = {"caption": "../report/contact_sheet.rst", "category": "Contact sheets"}
    if SHARDED:
        folder = directory(shard_folder("contact_sheets"))
        return report(
            folder, patterns=["{prompt}.png"], labels={"prompt": "{prompt}"}, **shown
        )
    return report(
        shard_file("contact_sheets", ".png"), labels={"prompt": "{shard}"}, **shown
    )


def per_shard(path):
    return expand(path, shard=SHARDS)


def get_prediction_outputs():
    return per_shard(shard_file("predictions", ".json"))


# ---- generation


def generation_settings():
    """Every generation setting that decides an image's pixels: the generate step's
    params and, the same values, part of each image's key in the image store (one
    definition, sdcnn.generate.pipeline.GenerationSettings)."""
    from dataclasses import asdict

    from sdcnn.generate.pipeline import GenerationSettings

    return asdict(GenerationSettings.from_config(GENERATION))


def resource_number(resources, name, default):
    value = resources[name] if name in resources else default
    return int(getattr(value, "value", value) or 0)  # a Snakemake Resource, or a number


def requested_gpus(rule, configured):
    """The GPUs a rule's jobs get: the config's request, or what --set-resources (a
    profile's set-resources) makes it under the rule's name here (a module's `as`),
    capped by the run's --resources gpu= (as Snakemake caps every job's)."""
    rename = getattr(workflow.modifier, "local_rulename_modifier", None)
    name = rename(rule) if callable(rename) else rule
    settings = workflow.resource_settings
    gpus = resource_number(
        settings.overwrite_resources.get(name) or {}, "gpu", configured
    )
    return min(gpus, resource_number(settings.resources or {}, "gpu", gpus))


@functools.cache  # generate's params and the training plan both ask
def generation_runtime():
    """What generate jobs run with (sdcnn.generate.pipeline.planned_runtime): the device its
    GPU request gives, the dtype, and the libraries' versions: with --sdm conda those
    envs/diffusion(-cuda).yaml pins, else this Python environment's."""
    import yaml

    from sdcnn.core import provenance
    from sdcnn.generate import pipeline

    libraries = pipeline.GENERATION_LIBRARIES
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        with open(workflow.source_path(diffusion_conda_env())) as env_file:
            env = yaml.safe_load(env_file)
        versions = provenance.env_file_versions(env, libraries)
    else:
        versions = provenance.package_versions(libraries)
    return pipeline.planned_runtime(
        gpus=requested_gpus("generate", GENERATION["gpu"]),
        precision=GENERATION["precision"],
        versions=versions,
    )


@functools.cache  # generate's params and the training plan both ask
def model_params():
    """The model's name and what it is (sdcnn/generate/model_identity.py): the demo's content hash,
    a local folder's files' sizes and times, a cached Hub model's commit."""
    # model.allow_download is left out on purpose: it decides whether a model may be
    # fetched, never what it draws (the generate script reads it from the config).
    from sdcnn.generate import model_identity
    from sdcnn.generate.model_source import looks_like_path

    source = MODEL["source"]
    if source == "demo":  # what the shipped model is: its files' content
        return {"source": "demo", "sha256": demo_model_fingerprint()}
    if looks_like_path(source):
        folder = Path(source).expanduser()
        return {"source": source, "files": model_identity.folder_state(folder)}
    cache = model_identity.hub_cache_dir()
    return {"source": source, "commit": model_identity.hub_cached_commit(source, cache)}


@functools.cache  # generate's params and the training plan both ask; 5 MB to hash
def demo_model_fingerprint():
    from sdcnn.generate.model_source import DEMO_PIPELINE_DIR
    from sdcnn.generate.image_store import folder_fingerprint

    return folder_fingerprint(DEMO_PIPELINE_DIR)


def model_input():
    """A local pipeline's model_index.json, or nothing: the demo model ships with the
    package (its content is in model_params()), a Hub id is in the Hugging Face cache.
    The same for every shard: a dict, not an input function (1,000 shards would be 1,000
    calls while Snakemake builds the DAG)."""
    if MODEL["source"] == "demo":
        return {}
    from sdcnn.generate.model_source import looks_like_path

    if looks_like_path(MODEL["source"]):
        return {
            "model_index": str(Path(MODEL["source"]).expanduser() / "model_index.json")
        }
    return {}


# ---- preprocessing


def preprocess_settings():
    return {key: PREPROCESS[key] for key in ("size", "grayscale", "interpolation")}


# ---- classification


def weights_mode():
    """classifier.weights: "trained", "glorot" (also null), or "file" (the user's own)."""
    weights = CLASSIFIER["weights"]
    if weights in (None, "glorot"):
        return "glorot"
    return "trained" if weights == "trained" else "file"


def get_weights_path():
    return {
        "glorot": INIT_WEIGHTS_PATH,
        "trained": TRAINED_WEIGHTS_PATH,
        "file": CLASSIFIER["weights"],
    }[weights_mode()]


def get_shard_truth(wildcards):
    """The label each prompt of the shard is meant to show (None: unlabelled), and the
    holdout rule: the prediction JSON records, per image, label, split and correctness.
    """
    return {
        "labels": {
            prompt_id: PROMPTS[prompt_id].get("label")
            for prompt_id in shard_prompt_ids(wildcards.shard)
        },
        "holdout_every": TRAINING["holdout_every"],
    }


# ---- training (classifier.weights: trained)


def labelled_prompts():
    """The labelled prompts, with their shard: what train_classifier learns from."""
    return [
        {
            "prompt_id": prompt_id,
            "label": PROMPTS[prompt_id]["label"],
            "n_images": PROMPTS[prompt_id]["n_images"],
            "shard": shard,
        }
        for shard, prompt_ids in SHARDS.items()
        for prompt_id in prompt_ids
        if PROMPTS[prompt_id].get("label") is not None
    ]


def get_training_inputs(wildcards):
    """train_classifier's plan (rules/train.smk), and the tensor folders of the shards
    that hold labelled prompts as ancient inputs: a shard re-run for an unlabelled prompt
    must not retrain.  What decides the labelled images is in the plan (training_images).
    """
    shards = sorted({prompt["shard"] for prompt in labelled_prompts()})
    tensors = {
        f"tensors_{shard}": ancient(f"{RESULTS}/tensors/{shard}") for shard in shards
    }
    return {"plan": f"{TRAINING_DIR}/plan.json", **tensors}


def training_images():
    """Everything that decides the labelled prompts' tensors: their text, the generation
    settings and model, the preprocessing: a change re-trains (the inputs are ancient).
    """
    return {
        "prompts": {
            prompt["prompt_id"]: [
                PROMPTS[prompt["prompt_id"]]["text"],
                PROMPTS[prompt["prompt_id"]]["negative_prompt"],
            ]
            for prompt in labelled_prompts()
        },
        "generation": generation_settings(),
        "runtime": generation_runtime(),
        "model": model_params(),
        "preprocess": preprocess_settings(),
    }


def training_code():
    """The code of the training step and of the steps that make its tensors (the plan's:
    train_classifier's own code trigger is not checked while its tensors are re-made).
    """
    return {
        **package_code("generate.py"),
        **package_code("preprocess.py"),
        **package_code("train_classifier.py"),
    }


def training_settings():
    from dataclasses import asdict

    from sdcnn.classify.training import TrainingSettings

    return asdict(TrainingSettings.from_config(TRAINING))


def cnn_architecture():
    """What the shape of freshly initialised weights depends on."""
    return {
        "in_channels": 1 if PREPROCESS["grayscale"] else 3,
        "image_size": PREPROCESS["size"],
        "n_labels": len(CLASSIFIER["labels"]),
    }


def julia_available():
    """Whether jobs can run `julia`: it is on PATH, or envs/julia.yaml brings it (--sdm conda)."""
    with_conda = (
        DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    )
    return with_conda or shutil.which("julia") is not None


def resolve_backend():
    """classifier.backend, `auto` resolved, decided once per run (sdcnn/classify/prediction.py):
    the main process decides; its jobs take its decision from the environment."""
    from sdcnn.classify import prediction
    from sdcnn.workflow.step import StepError

    requested = CLASSIFIER["backend"]
    if workflow.is_main_process or not (
        resolved := prediction.decided_backend(requested, os.environ)
    ):
        try:
            resolved = prediction.resolve_backend(
                requested,
                julia_found=julia_available(),
                julia_project=JULIA_DIR is not None,
            )
        except StepError as error:  # before any job runs: one clear message
            raise WorkflowError(f"classifier.backend: {error}") from None
    decision = prediction.backend_decision(requested, resolved)
    os.environ[prediction.BACKEND_DECISION_VARIABLE] = decision  # this process's only
    return resolved


BACKEND = resolve_backend()


envvars:
    "SDCNN_BACKEND_DECISION",  # the decision, to every job (sdcnn/classify/prediction.py)


def julia_inputs():
    """The Flux backend's code and installed environment (nothing for torch); relative
    paths, so that moving the project folder changes no input."""
    if BACKEND != "flux":
        return []
    sources = sorted((JULIA_DIR / "src").glob("*.jl"))
    project = [JULIA_DIR / name for name in ("Project.toml", "predict.jl")]
    return [JULIA_ENV_STAMP, *(os.path.relpath(path) for path in [*project, *sources])]


def julia_project_input():
    """instantiate_julia's input: the Julia project's file (none in a remote module)."""
    if JULIA_DIR is None:
        return {}
    return {"project": os.path.relpath(JULIA_DIR / "Project.toml")}


def diffusion_conda_env():
    """The CUDA build of torch for generate jobs that get a GPU, else the CPU build."""
    if requested_gpus("generate", GENERATION["gpu"]) > 0:
        return "../envs/diffusion-cuda.yaml"
    return "../envs/diffusion.yaml"


def predict_conda_env():
    """Julia for flux; torch's CUDA build for predict jobs that get a GPU, else its CPU one."""
    if BACKEND == "flux":
        return "../envs/julia.yaml"
    if requested_gpus("predict", CLASSIFIER["gpu"]) > 0:
        return "../envs/predict-torch-cuda.yaml"
    return "../envs/predict-torch.yaml"


# ---- what the workflow delivers


def get_shard_data_outputs():
    """The data outputs of the shards: images, tensors, previews, predictions."""
    folders = [shard_folder(kind) for kind in ("images", "tensors", "previews")]
    return per_shard([*folders, shard_file("predictions", ".json")])


def get_data_outputs():
    """Every data output of the workflow (what the manifest lists)."""
    built = {"glorot": [INIT_WEIGHTS_PATH], "trained": [TRAINED_WEIGHTS_PATH]}.get(
        weights_mode(), []
    )
    return [
        *built,
        *get_shard_data_outputs(),
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/summary.json",
    ]


def get_training_metrics_input(wildcards):
    """The training's metrics (they record its kernels) when the weights are trained."""
    return (
        {"training_metrics": f"{TRAINING_DIR}/metrics.json"}
        if weights_mode() == "trained"
        else {}
    )


def get_julia_stamp_input(wildcards):
    """The Julia environment's stamp (its versions) when the flux backend runs."""
    return {"julia_stamp": JULIA_ENV_STAMP} if BACKEND == "flux" else {}


def output_config():
    """The validated config, less what never changes an output (sdcnn.core.provenance)."""
    from sdcnn.core.provenance import output_config as without_non_output_keys

    return without_non_output_keys(config)


def config_hash():
    """sha256 of the output config with the prompts themselves (a sheet's rows, not its
    path): a sheet and the mapping it holds have the same hash."""
    from sdcnn.core.provenance import config_sha256

    return config_sha256({**output_config(), "prompts": PROMPTS})


def get_training_outputs():
    if weights_mode() != "trained":
        return []
    return [
        f"{TRAINING_DIR}/metrics.json",
        f"{TRAINING_DIR}/curve.png",
        f"{TRAINING_DIR}/confusion_matrix.png",
    ]


def get_report_outputs():
    """What is made for people to look at (and shown by snakemake --report): contact
    sheets, probability charts, the summary table and the run's info as pages."""
    return [
        *get_training_outputs(),
        *per_shard(shard_file("contact_sheets", ".png")),
        *per_shard(shard_folder("charts")),
        f"{RESULTS}/summary.html",
        f"{RESULTS}/run_info.html",
    ]


def get_final_outputs():
    return [
        *get_data_outputs(),
        f"{RESULTS}/manifest.json",
        *get_report_outputs(),
        *get_dataset_outputs(),
    ]


# ---- what is drawn for people grows with what they can look at, not with the images

FIGURES = config["figures"]
# a larger summary.csv is left out of the report (it would be most of its size)
REPORT_CSV_MAX_ROWS = 10_000


def figures_quota(key):
    """A params: function: the shard's share of the run's ``figures.<key>``, by the
    shard's number (a prompt added or removed moves no other shard's share); without
    shards each prompt is a shard and may have them all."""
    from sdcnn.core.shards import quota
    from sdcnn.config.prompts import shard_name

    n_shards = config["shards"]
    number = {shard_name(i, n_shards): i for i in range(n_shards)} if SHARDED else {}

    def share(wildcards):
        if not SHARDED:
            return FIGURES[key]
        return quota(FIGURES[key], number[wildcards.shard], n_shards)

    return share


def summary_csv_output():
    """summary.csv, in the report (a download) while it is small enough to embed."""
    path = f"{RESULTS}/summary.csv"
    if sum(prompt["n_images"] for prompt in PROMPTS.values()) > REPORT_CSV_MAX_ROWS:
        return path
    labels = {"table": "summary.csv (download)"}
    return report(
        path, caption="../report/summary_csv.rst", category="Summary", labels=labels
    )


def get_dataset_outputs():
    """The run as a training data set: a WebDataset tar per shard (sdcnn/export/webdataset_tars.py)."""
    return per_shard(f"{RESULTS}/dataset/{{shard}}.tar")


# ---- who holds each lock (sdcnn/workflow/locks.py): recorded when a run starts executing, in the
# main process only (never in dry runs or cluster jobs), so that `python -m sdcnn.workflow.locks`
# (`make run`) can remove the locks of a run that was killed, and only those. Installed on
# the workflow object, not with `onstart:`, which Snakemake ignores in a module's Snakefile
# (`module x: ...; use rule * from x`); installing registers handlers and writes nothing.
from sdcnn.workflow.locks import install_hooks

install_hooks(workflow)
