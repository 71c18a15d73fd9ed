"""Config validation, wildcard constraints and the input/params helpers of every rule."""

import re
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

WORKFLOW_DIR = Path(workflow.basedir)
sys.path.insert(0, str(WORKFLOW_DIR))  # the sdcnn package, for the helpers below

PROMPTS = config["prompts"]
GENERATION = config["generation"]
MODEL = config["model"]
PREPROCESS = config["preprocess"]
CLASSIFIER = config["classifier"]

RESULTS = "results"
DEMO_MODEL_DIR = f"{RESULTS}/models/demo"
INIT_WEIGHTS_PATH = f"{RESULTS}/weights/cnn.safetensors"


wildcard_constraints:
    prompt="|".join(re.escape(prompt_id) for prompt_id in PROMPTS),


# ---- code the steps import: edits to these re-run the step (Snakemake only watches the script)


def package_modules(script):
    from sdcnn.codedeps import package_modules as imported_package_files

    return imported_package_files(
        WORKFLOW_DIR / "scripts" / script, WORKFLOW_DIR / "sdcnn"
    )


# ---- prompts and images


def get_prompt(wildcards):
    prompt = PROMPTS[wildcards.prompt]
    return {
        "text": prompt["text"],
        "negative_prompt": prompt["negative_prompt"],
        "n_images": prompt["n_images"],
    }


def get_image_seeds(wildcards):
    from sdcnn.seeds import image_seeds

    n_images = PROMPTS[wildcards.prompt]["n_images"]
    return image_seeds(GENERATION["base_seed"], wildcards.prompt, n_images)


def get_image_ids(wildcards):
    from sdcnn.naming import image_ids

    return image_ids(wildcards.prompt, PROMPTS[wildcards.prompt]["n_images"])


# ---- generation


def generation_settings():
    """What, besides prompt and seed, decides an image's pixels."""
    return {
        key: GENERATION[key]
        for key in ("steps", "guidance_scale", "height", "width", "scheduler")
    }


def model_params():
    return {"source": MODEL["source"], "allow_download": MODEL["allow_download"]}


def get_model_input(wildcards):
    """The demo folder (built by a rule), or a local pipeline's model_index.json, or nothing for a Hub id."""
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


def get_final_outputs():
    return [
        *expand(f"{RESULTS}/predictions/{{prompt}}.json", prompt=PROMPTS),
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/summary.json",
    ]
