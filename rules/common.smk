"""Config validation, wildcard constraints and the input/params helpers of every rule."""

import os
import shutil
import sys
from pathlib import Path

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

WORKFLOW_DIR = Path(workflow.basedir)
sys.path.insert(0, str(WORKFLOW_DIR))  # the sdcnn package, for the helpers below

from sdcnn.configcheck import ConfigError, check_config

# Before any job: the config files Snakemake read, then the merged config against the
# schema (defaults filled in), then what a schema cannot check (model folder, weights).
try:
    check_config(config, WORKFLOW_DIR / "config" / "schema.yaml", workflow.configfiles)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

from sdcnn.locks import clear_stale_locks

clear_stale_locks(Path.cwd())  # a killed run's lock must not block the next run

PROMPTS = config["prompts"]
GENERATION = config["generation"]
MODEL = config["model"]
PREPROCESS = config["preprocess"]
CLASSIFIER = config["classifier"]

PROMPT_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
RESULTS = "results"
DEMO_MODEL_DIR = f"{RESULTS}/models/demo"
INIT_WEIGHTS_PATH = f"{RESULTS}/weights/cnn.safetensors"
JULIA_DIR = WORKFLOW_DIR / "julia"  # the Flux backend's Julia project
# Written once the Julia packages are installed: flux jobs need it, `auto` looks for it.
JULIA_ENV_STAMP = f"{RESULTS}/julia/instantiated.txt"


# The id pattern of config/schema.yaml: no slash, no "..", so a prompt wildcard never
# spans folders.  (Listing the ids themselves as an alternation costs seconds of DAG
# building at 1,000 prompts; unknown ids are reported by prompt_config() instead.)
wildcard_constraints:
    prompt=PROMPT_ID_PATTERN,


# ---- code the steps import: edits to these re-run the step (Snakemake only watches the script)


def package_code(script):
    """{file: digest of its code} for the script and the package modules it imports: a
    params: value, so that changing what one of them does re-runs the step, and the
    dry-run reason shows which file changed (comments and docstrings do not count)."""
    from sdcnn.codedeps import code_digests

    return code_digests(WORKFLOW_DIR / "scripts" / script, WORKFLOW_DIR / "sdcnn")


# ---- prompts and images


def prompt_config(prompt_id):
    if prompt_id not in PROMPTS:
        raise WorkflowError(
            f"prompt id {prompt_id!r} is not in the config's prompts ({', '.join(PROMPTS)})"
        )
    return PROMPTS[prompt_id]


def get_prompt(wildcards):
    prompt = prompt_config(wildcards.prompt)
    return {
        "text": prompt["text"],
        "negative_prompt": prompt["negative_prompt"],
        "n_images": prompt["n_images"],
    }


def get_image_seeds(wildcards):
    from sdcnn.seeds import image_seeds

    n_images = prompt_config(wildcards.prompt)["n_images"]
    return image_seeds(GENERATION["base_seed"], wildcards.prompt, n_images)


def get_image_ids(wildcards):
    from sdcnn.naming import image_ids

    return image_ids(wildcards.prompt, prompt_config(wildcards.prompt)["n_images"])


# ---- generation


def generation_settings():
    """What, besides prompt and seed, decides an image's pixels."""
    return {
        key: GENERATION[key]
        for key in (
            "steps",
            "guidance_scale",
            "height",
            "width",
            "scheduler",
            "batch_size",
            "compile",
        )
    }


def model_params():
    return {"source": MODEL["source"], "allow_download": MODEL["allow_download"]}


def model_input():
    """The demo folder (built by a rule), or a local pipeline's model_index.json, or
    nothing for a Hub id.  The same for every prompt: a dict, not an input function
    (1,000 prompts would be 1,000 calls while Snakemake builds the DAG)."""
    if MODEL["source"] == "demo":
        return {"model": DEMO_MODEL_DIR}
    from sdcnn.generation import looks_like_path

    if looks_like_path(MODEL["source"]):
        return {
            "model_index": str(Path(MODEL["source"]).expanduser() / "model_index.json")
        }
    return {}


# ---- preprocessing


def preprocess_settings():
    return {key: PREPROCESS[key] for key in ("size", "grayscale", "interpolation")}


# ---- classification


def get_weights_path():
    return CLASSIFIER["weights"] or INIT_WEIGHTS_PATH


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
    """classifier.backend with `auto` resolved: flux once Julia and its environment are there."""
    from sdcnn.prediction import resolve_backend as resolve
    from sdcnn.step import StepError

    try:
        return resolve(
            CLASSIFIER["backend"],
            julia_found=julia_available(),
            julia_ready=Path(JULIA_ENV_STAMP).is_file(),
        )
    except StepError as error:  # before any job runs: one clear message, no traceback
        raise WorkflowError(f"classifier.backend: {error}") from None


BACKEND = resolve_backend()


def julia_inputs():
    """The Flux backend's code and installed environment (nothing for torch); relative
    paths, so that moving the project folder changes no input."""
    if BACKEND != "flux":
        return []
    sources = sorted((JULIA_DIR / "src").glob("*.jl"))
    project = [JULIA_DIR / name for name in ("Project.toml", "predict.jl")]
    return [JULIA_ENV_STAMP, *(os.path.relpath(path) for path in [*project, *sources])]


def julia_project_file():
    return os.path.relpath(JULIA_DIR / "Project.toml")


def predict_conda_env():
    return "../envs/julia.yaml" if BACKEND == "flux" else "../envs/predict-torch.yaml"


# ---- what the workflow delivers


def get_data_outputs():
    """Every data output of the workflow (what the manifest lists)."""
    per_prompt = [
        f"{RESULTS}/images/{{prompt}}",
        f"{RESULTS}/tensors/{{prompt}}",
        f"{RESULTS}/previews/{{prompt}}",
        f"{RESULTS}/predictions/{{prompt}}.json",
    ]
    built = [DEMO_MODEL_DIR] if MODEL["source"] == "demo" else []
    built += [] if CLASSIFIER["weights"] else [INIT_WEIGHTS_PATH]
    return [
        *built,
        *expand(per_prompt, prompt=PROMPTS),
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/summary.json",
    ]


def get_julia_stamp_input(wildcards):
    """The Julia environment's stamp (its versions) when the flux backend runs."""
    return {"julia_stamp": JULIA_ENV_STAMP} if BACKEND == "flux" else {}


def output_config():
    """The validated config, less what never changes an output (the image store)."""
    return {key: value for key, value in config.items() if key != "store"}


def config_hash():
    from sdcnn.provenance import config_sha256

    return config_sha256(output_config())


def get_report_outputs():
    """What is made for people to look at (and shown by snakemake --report): contact
    sheets, probability charts, the summary table and the run's info as pages."""
    return [
        *expand(f"{RESULTS}/contact_sheets/{{prompt}}.png", prompt=PROMPTS),
        *expand(f"{RESULTS}/charts/{{prompt}}", prompt=PROMPTS),
        f"{RESULTS}/summary.html",
        f"{RESULTS}/run_info.html",
    ]


def get_final_outputs():
    return [*get_data_outputs(), f"{RESULTS}/manifest.json", *get_report_outputs()]
