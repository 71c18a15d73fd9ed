"""What a checked config asks the workflow to do: its shards, each shard's prompts and
truth, what training learns from, and the paths of everything it delivers.

Pure planning, read by ``rules/common.smk`` at parse time (which runs again in every
cluster job, dry run, lint and report): nothing here writes, runs a model, or knows
Snakemake; the rules wrap these values in ``directory()``, ``report()`` and ``ancient()``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdcnn.config.values import (
    WEIGHTS_FILE,
    WEIGHTS_GLOROT,
    WEIGHTS_TRAINED,
    image_channels,
    weights_mode,
)
from sdcnn.core.shards import ShardLayout, assign_shards, quota, shard_name

if TYPE_CHECKING:
    from sdcnn.evaluate.real_images import RealImage

RESULTS = "results"
SHARD = "{shard}"  # the wildcard of every per-shard path

# the workflow's outputs outside the shards' folders (rules/ take them from here)
INIT_WEIGHTS_PATH = f"{RESULTS}/weights/glorot.safetensors"
TRAINED_WEIGHTS_PATH = f"{RESULTS}/weights/trained.safetensors"
TRAINING_DIR = f"{RESULTS}/training"
TRAINING_PLAN, TRAINING_METRICS, TRAINING_CURVE, TRAINING_CONFUSION = (
    f"{TRAINING_DIR}/{name}"
    for name in ("plan.json", "metrics.json", "curve.png", "confusion_matrix.png")
)
JULIA_ENV_STAMP = f"{RESULTS}/julia/instantiated.txt"  # the Julia packages are installed
SUMMARY_CSV, SUMMARY_JSON, SUMMARY_HTML = (
    f"{RESULTS}/summary.{ext}" for ext in ("csv", "json", "html")
)
RUN_INFO_HTML = f"{RESULTS}/run_info.html"
MANIFEST = f"{RESULTS}/manifest.json"
DATASET_TAR = f"{RESULTS}/dataset/{SHARD}.tar"
DIVERSITY_JSON = f"{RESULTS}/diversity/{SHARD}.json"  # a shard's prompts (sdcnn-diversity/1)

# the real images (evaluation.real): their own shards, under results/real/
REAL_SHARD = "{real_shard}"  # the wildcard of every per-real-shard path
REAL_TENSORS = f"{RESULTS}/real/tensors/{REAL_SHARD}"
REAL_PREDICTIONS = f"{RESULTS}/real/predictions/{REAL_SHARD}.json"
EVALUATION_DIR = f"{RESULTS}/evaluation"
EVALUATION_JSON, EVALUATION_CONFUSION = (
    f"{EVALUATION_DIR}/{name}" for name in ("metrics.json", "confusion_matrix.png")
)

PROMPT_ID_DEFINITION = ("properties", "prompts", "propertyNames")  # in config/schema.yaml


def prompt_id_pattern(schema: Mapping[str, Any]) -> str:
    """The schema's prompt id pattern without its anchors: a wildcard constraint.  Shard
    names ("03-of-16") fit it too: no slash, no "..", so a wildcard never spans folders."""
    definition: Any = schema
    for key in PROMPT_ID_DEFINITION:
        definition = definition[key]
    return definition["pattern"].removeprefix("^").removesuffix("$")


class UnknownShard(LookupError):
    """A shard name the config does not make (a target asked for by hand)."""


class RunPlan:
    """The plan of one checked config and its prompts (``checked_prompts``)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        prompts: Mapping[str, Mapping[str, Any]],
        real_images: Sequence[RealImage] = (),
    ):
        """``real_images``: the checked real set (``read_real_images``), none without one."""
        from sdcnn.evaluate.real_images import shard_real_images

        self.config = config
        self.prompts = prompts
        self.real_shards = shard_real_images(real_images, config["evaluation"]["shards"])
        self.n_shards: int | None = config["shards"]
        # shard name -> its prompt ids in the config's order; without `shards`, each
        # prompt is its own shard, named after it
        self.shards = assign_shards(prompts, self.n_shards)
        self.layout = ShardLayout(sharded=self.n_shards is not None)

    @property
    def sharded(self) -> bool:
        return self.layout.sharded

    # ---- shards and their prompts

    def shard_prompt_ids(self, shard: str) -> list[str]:
        if shard not in self.shards:
            why = "" if self.sharded else " (without `shards`, each prompt id is its own shard)"
            raise UnknownShard(f"{shard!r} is not a shard of this config{why}")
        return self.shards[shard]

    @functools.cache  # noqa: B019 (one plan per parse; generate and figures both ask)
    def shard_prompt_specs(self, shard: str) -> list[dict[str, Any]]:
        """What decides a shard's images, prompt by prompt (a params: value, so editing one
        prompt re-runs its shard only): id, text, negative prompt, number of images."""
        return [
            {
                "prompt_id": prompt_id,
                "text": self.prompts[prompt_id]["text"],
                "negative_prompt": self.prompts[prompt_id]["negative_prompt"],
                "n_images": self.prompts[prompt_id]["n_images"],
            }
            for prompt_id in self.shard_prompt_ids(shard)
        ]

    def shard_images(self, shard: str) -> dict[str, int]:
        """The shard's prompts and how many images each has."""
        return {
            prompt_id: self.prompts[prompt_id]["n_images"]
            for prompt_id in self.shard_prompt_ids(shard)
        }

    def shard_truth(self, shard: str) -> dict[str, Any]:
        """The label each prompt of the shard is meant to show (None: unlabelled), and the
        holdout rule: the prediction JSON records, per image, label, split and correctness."""
        return {
            "labels": {
                prompt_id: self.prompts[prompt_id].get("label")
                for prompt_id in self.shard_prompt_ids(shard)
            },
            "holdout_every": self.config["training"]["holdout_every"],
        }

    def figures_share(self, key: str, shard: str) -> int | None:
        """The shard's share of the run's ``figures.<key>``, by the shard's number (a prompt
        added or removed moves no other shard's share); without shards each prompt is a
        shard and may have them all."""
        total = self.config["figures"][key]
        if not self.sharded:
            return total
        return quota(total, self._shard_numbers[shard], self.n_shards)

    @functools.cached_property
    def _shard_numbers(self) -> dict[str, int]:
        return {shard_name(i, self.n_shards): i for i in range(self.n_shards or 0)}

    def image_count(self) -> int:
        return sum(prompt["n_images"] for prompt in self.prompts.values())

    # ---- real images (evaluation.real): shards of their own

    @property
    def evaluates(self) -> bool:
        """The config names a real set."""
        return bool(self.real_shards)

    def real_shard_images(self, shard: str) -> list[RealImage]:
        if shard not in self.real_shards:
            raise UnknownShard(f"{shard!r} is not a shard of the real images")
        return self.real_shards[shard]

    def real_shard_files(self, shard: str) -> list[str]:
        """The shard's image files: preprocess_real's inputs (a file edited re-runs it)."""
        return [str(image.path) for image in self.real_shard_images(shard)]

    def real_shard_paths(self, shard: str) -> dict[str, str]:
        """Image id -> its path in the real set: what decides the shard's tensors, besides
        the files themselves (a params: value: an image added or removed re-runs its shard)."""
        return {image.image_id: image.relative for image in self.real_shard_images(shard)}

    def real_shard_labels(self, shard: str) -> dict[str, str | None]:
        """Image id -> its label (None: predict only): what predict_real records."""
        return {image.image_id: image.label for image in self.real_shard_images(shard)}

    def real_prediction_outputs(self) -> list[str]:
        return [REAL_PREDICTIONS.replace(REAL_SHARD, shard) for shard in self.real_shards]

    def evaluation_outputs(self) -> list[str]:
        """The real set's scores, if any (the summary writes them)."""
        return [EVALUATION_JSON] if self.evaluates else []

    def evaluation_figures(self) -> list[str]:
        return [EVALUATION_CONFUSION] if self.evaluates else []

    def diversity_settings(self) -> dict[str, Any]:
        diversity = self.config["evaluation"]["diversity"]
        keys = ("hash", "max_hamming", "min_mean_distance", "max_duplicate_share")
        return {key: diversity[key] for key in keys}

    # ---- settings, as the steps take them

    def generation_settings(self) -> dict[str, Any]:
        """Every generation setting that decides an image's pixels: generate's params and,
        the same values, part of each image's key in the image store."""
        from sdcnn.generate.pipeline import GenerationSettings

        return asdict(GenerationSettings.from_config(self.config["generation"]))

    def preprocess_settings(self) -> dict[str, Any]:
        preprocess = self.config["preprocess"]
        return {key: preprocess[key] for key in ("size", "grayscale", "interpolation")}

    def training_settings(self) -> dict[str, Any]:
        from sdcnn.classify.training import TrainingSettings

        return asdict(TrainingSettings.from_config(self.config["training"]))

    def cnn_architecture(self) -> dict[str, int]:
        """What the shape of freshly initialised weights depends on."""
        return {
            "in_channels": image_channels(self.config["preprocess"]),
            "image_size": self.config["preprocess"]["size"],
            "n_labels": len(self.config["classifier"]["labels"]),
        }

    def model_input(self) -> dict[str, str]:
        """A local pipeline's model_index.json, or nothing: the demo model ships with the
        package, a Hub id is in the Hugging Face cache (their identity is in generate's
        params).  The same for every shard: a dict, not an input function."""
        from sdcnn.generate.model_source import DEMO, looks_like_path

        source = self.config["model"]["source"]
        if source == DEMO or not looks_like_path(source):
            return {}
        return {"model_index": str(Path(source).expanduser() / "model_index.json")}

    # ---- training (classifier.weights: trained)

    @property
    def weights_mode(self) -> str:
        return weights_mode(self.config["classifier"]["weights"])

    def weights_path(self) -> str:
        """The weights predict runs with."""
        return {
            WEIGHTS_GLOROT: INIT_WEIGHTS_PATH,
            WEIGHTS_TRAINED: TRAINED_WEIGHTS_PATH,
            WEIGHTS_FILE: self.config["classifier"]["weights"],
        }[self.weights_mode]

    @functools.cached_property
    def labelled_prompts(self) -> list[dict[str, Any]]:
        """The labelled prompts, with their shard: what train_classifier learns from."""
        return [
            {
                "prompt_id": prompt_id,
                "label": self.prompts[prompt_id]["label"],
                "n_images": self.prompts[prompt_id]["n_images"],
                "shard": shard,
            }
            for shard, prompt_ids in self.shards.items()
            for prompt_id in prompt_ids
            if self.prompts[prompt_id].get("label") is not None
        ]

    def labelled_shards(self) -> list[str]:
        return sorted({prompt["shard"] for prompt in self.labelled_prompts})

    def labelled_texts(self) -> dict[str, list[str | None]]:
        """The labelled prompts' text and negative prompt: part of what decides their images."""
        return {
            prompt["prompt_id"]: [
                self.prompts[prompt["prompt_id"]]["text"],
                self.prompts[prompt["prompt_id"]]["negative_prompt"],
            ]
            for prompt in self.labelled_prompts
        }

    def training_images(self, runtime: Mapping[str, Any], model: Mapping[str, Any]) -> dict:
        """Everything that decides the labelled prompts' tensors: their text, the generation
        settings, runtime and model, the preprocessing: a change re-trains (train_classifier
        reads its tensors as ancient inputs)."""
        return {
            "prompts": self.labelled_texts(),
            "generation": self.generation_settings(),
            "runtime": dict(runtime),
            "model": dict(model),
            "preprocess": self.preprocess_settings(),
        }

    # ---- where outputs go: results/<kind>/<shard>/ holds one folder (or file) per prompt;
    # without shards results/<kind>/<prompt>/ (or <prompt>.json) is the prompt's own

    def shard_folder(self, kind: str) -> str:
        return f"{RESULTS}/{kind}/{SHARD}"

    def shard_file(self, kind: str, suffix: str) -> str:
        """One file per prompt: the prompt's own file, or, with shards, a folder of them
        (``ShardLayout.file`` finds each prompt's inside)."""
        return self.shard_folder(kind) if self.sharded else f"{RESULTS}/{kind}/{SHARD}{suffix}"

    def of_shard(self, pattern: str, shard: str) -> str:
        """A per-shard path (``shard_folder``'s, ``DATASET_TAR``) for one shard."""
        return pattern.replace(SHARD, shard)

    def per_shard(self, *patterns: str) -> list[str]:
        return [self.of_shard(pattern, shard) for pattern in patterns for shard in self.shards]

    def prediction_outputs(self) -> list[str]:
        return self.per_shard(self.shard_file("predictions", ".json"))

    def data_outputs(self) -> list[str]:
        """Every data output of the workflow (what the manifest lists)."""
        built = {WEIGHTS_GLOROT: [INIT_WEIGHTS_PATH], WEIGHTS_TRAINED: [TRAINED_WEIGHTS_PATH]}
        folders = [self.shard_folder(kind) for kind in ("images", "tensors", "previews")]
        return [
            *built.get(self.weights_mode, []),
            *self.per_shard(*folders, self.shard_file("predictions", ".json")),
            *self.per_shard(DIVERSITY_JSON),
            *[REAL_TENSORS.replace(REAL_SHARD, shard) for shard in self.real_shards],
            *self.real_prediction_outputs(),
            SUMMARY_CSV,
            SUMMARY_JSON,
            *self.evaluation_outputs(),
        ]

    def training_outputs(self) -> list[str]:
        if self.weights_mode != WEIGHTS_TRAINED:
            return []
        return [TRAINING_METRICS, TRAINING_CURVE, TRAINING_CONFUSION]

    def report_outputs(self) -> list[str]:
        """What is made for people to look at (and shown by snakemake --report): contact
        sheets, probability charts, the summary table and the run's info as pages."""
        return [
            *self.training_outputs(),
            *self.evaluation_figures(),
            *self.per_shard(self.shard_file("contact_sheets", ".png")),
            *self.per_shard(self.shard_folder("charts")),
            SUMMARY_HTML,
            RUN_INFO_HTML,
        ]

    def dataset_outputs(self) -> list[str]:
        """The run as a training data set: a WebDataset tar per shard."""
        return self.per_shard(DATASET_TAR)

    def final_outputs(self) -> list[str]:
        return [
            *self.data_outputs(),
            MANIFEST,
            *self.report_outputs(),
            *self.dataset_outputs(),
        ]
