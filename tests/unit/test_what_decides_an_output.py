"""What decides an output, walked over the schema: no setting can be dropped unnoticed.

- Every ``generation`` setting and every prompt field either changes each image's key in
  the image store (and a real generation then makes the image again instead of reusing
  it), or is listed below with the reason it does not.
- Every ``preprocess`` setting changes the tensor of a non-flat image, or is listed.
- Every ``classifier`` setting changes the predictions, or is listed.

A new key in config/schema.yaml fails these tests until it is placed in one of the
groups.  The generate rule's params and the store key come from one definition
(``sdcnn.generate.pipeline.GenerationSettings``), so a setting Snakemake tracks is a setting the
store tracks.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sdcnn.config.check import check_config, load_schema
from sdcnn.config.plan import RunPlan
from sdcnn.core.shards import ShardLayout
from sdcnn.generate.image_store import ImageStore
from sdcnn.generate.model_source import ModelSource
from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
from sdcnn.generate.shard_generator import ShardGenerator, ShardResult, generate_shard
from sdcnn.preprocess.image_to_tensor import preprocess_image, preprocess_prompt
from tests.support.workspace import REPO

SCHEMA = load_schema(REPO / "config" / "schema.yaml")
PROPERTIES = SCHEMA["properties"]
DEFAULTS = check_config({"prompts": {"p": {"text": "a circle"}}}, REPO / "config" / "schema.yaml")


@pytest.fixture(autouse=True)
def torch_threads_restored() -> Any:
    """generate_shard pins torch's threads for the process: put them back after each test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

# ---- generation: the image store key

# settings that decide no image's pixels as they are written, and why
NOT_IN_THE_IMAGE_KEY = {
    "generation.gpu": "a resource: the key holds the device the image was made on",
    "prompts.*.n_images": "says which images a prompt has, not what one looks like",
    "prompts.*.label": "what the images are meant to show, not what they look like",
}
# a changed value for each setting the key must follow
NEW_GENERATION_VALUES = {
    "steps": 3,
    "guidance_scale": 5.0,
    "height": 72,
    "width": 56,
    "scheduler": "euler",
    "base_seed": 8,
    "threads": 2,
    "precision": "fp16",
    "batch_size": 2,
    "compile": True,
    "true_cfg_scale": 2.0,
    "vae_tiling": "always",
    "offload": "model",
}
NEW_PROMPT_VALUES = {"text": "a blue square", "negative_prompt": "green"}


def generation_keys_in_schema() -> list[str]:
    return [f"generation.{name}" for name in PROPERTIES["generation"]["properties"]]


def prompt_fields_in_schema() -> list[str]:
    item = PROPERTIES["prompts"]["additionalProperties"]["properties"]
    return [f"prompts.*.{name}" for name in item]


def test_every_generation_setting_and_prompt_field_is_placed() -> None:
    in_key = {f"generation.{field.name}" for field in fields(GenerationSettings)}
    in_key |= {f"prompts.*.{name}" for name in NEW_PROMPT_VALUES}
    unplaced = [
        key
        for key in generation_keys_in_schema() + prompt_fields_in_schema()
        if key not in in_key and key not in NOT_IN_THE_IMAGE_KEY
    ]
    assert unplaced == [], (
        f"{unplaced}: add them to GenerationSettings (they decide pixels: params and store key) "
        "or to NOT_IN_THE_IMAGE_KEY with the reason"
    )
    assert set(NEW_GENERATION_VALUES) == {field.name for field in fields(GenerationSettings)}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdcnn.generate.model_source import DEMO_PIPELINE_DIR

    folder = tmp_path_factory.mktemp("model") / "demo"
    shutil.copytree(DEMO_PIPELINE_DIR, folder)
    return folder


def base_settings() -> GenerationSettings:
    small = {**DEFAULTS["generation"], "steps": 2, "height": 64, "width": 64}
    return GenerationSettings.from_config(small)


BASE_PROMPT = PromptSpec(prompt_id="p", text="a red circle", negative_prompt="", n_images=2)


def image_keys(
    store: ImageStore, model_folder: Path, settings: GenerationSettings, prompt: PromptSpec
) -> list[dict[str, Any]]:
    generator = ShardGenerator(
        settings=settings,
        model=ModelSource("local", str(model_folder), "demo"),
        allow_download=False,
        device="cpu",
        dtype="torch.float32",
        store=store,
    )
    return generator.prompt_image_keys(prompt)


CHANGES = [f"generation.{name}" for name in NEW_GENERATION_VALUES] + [
    f"prompts.*.{name}" for name in NEW_PROMPT_VALUES
]


def changed(key: str) -> tuple[GenerationSettings, PromptSpec]:
    name = key.rsplit(".", 1)[1]
    if key.startswith("generation."):
        return replace(base_settings(), **{name: NEW_GENERATION_VALUES[name]}), BASE_PROMPT
    return base_settings(), replace(BASE_PROMPT, **{name: NEW_PROMPT_VALUES[name]})


@pytest.mark.parametrize("key", CHANGES)
def test_the_image_key_follows_every_setting(key: str, model_folder: Path, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    before = image_keys(store, model_folder, base_settings(), BASE_PROMPT)
    after = image_keys(store, model_folder, *changed(key))
    same = [index for index, (a, b) in enumerate(zip(before, after, strict=True)) if a == b]
    assert same == [], f"changing {key} leaves the store key of image(s) {same} unchanged"


@pytest.mark.parametrize("key", sorted(NOT_IN_THE_IMAGE_KEY))
def test_the_listed_settings_keep_the_image_key(
    key: str, model_folder: Path, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path)
    before = image_keys(store, model_folder, base_settings(), BASE_PROMPT)
    if key == "prompts.*.n_images":
        more = image_keys(store, model_folder, base_settings(), replace(BASE_PROMPT, n_images=3))
        assert more[:2] == before, "one more image changed the keys of the others"
    elif key == "prompts.*.label":  # the generator's PromptSpec has no label at all
        assert "label" not in {field.name for field in fields(PromptSpec)}
    else:  # generation.gpu: not a setting at all, the device used is in the key
        assert all(key_["device"] == "cpu" for key_ in before)


# settings whose real regeneration is checked (compile: torch.compile on a CPU takes minutes)
REGENERATED = [key for key in CHANGES if key != "generation.compile"]


@pytest.mark.parametrize("key", REGENERATED)
def test_the_store_makes_the_image_again_after_a_change(
    key: str, model_folder: Path, tmp_path: Path
) -> None:
    store = ImageStore(tmp_path / "store")
    model = ModelSource("local", str(model_folder), "demo")

    def run(settings: GenerationSettings, prompt: PromptSpec, name: str) -> ShardResult:
        return generate_shard(
            output_dir=tmp_path / name, prompts=[prompt], layout=ShardLayout(False),
            settings=settings, model=model, allow_download=False, gpus=0, store=store,
        )  # fmt: skip

    assert run(base_settings(), BASE_PROMPT, "first").counts == {"reused": 0, "generated": 2}
    assert run(base_settings(), BASE_PROMPT, "again").counts == {"reused": 2, "generated": 0}
    counts = run(*changed(key), "changed").counts
    assert counts == {"reused": 0, "generated": 2}, f"after changing {key}: {counts}"


# ---- preprocessing: the tensor

NOT_IN_THE_TENSOR = {"preprocess.threads": "images are independent: any thread count, same bytes"}
NEW_PREPROCESS_VALUES = {"size": 20, "grayscale": False, "interpolation": "linear"}


def unplaced_keys(section: str, changed: Iterable[str], unchanged: Iterable[str]) -> list[str]:
    """The schema's keys of ``section`` that a test neither changes (``changed``: names in
    the section) nor says why they change nothing (``unchanged``: dotted keys)."""
    keys = [f"{section}.{name}" for name in PROPERTIES[section]["properties"]]
    return [key for key in keys if key.split(".")[1] not in changed and key not in unchanged]


def test_every_preprocess_setting_is_placed() -> None:
    unplaced = unplaced_keys("preprocess", NEW_PREPROCESS_VALUES, NOT_IN_THE_TENSOR)
    assert unplaced == [], f"{unplaced}: say how they change the tensor, or why they do not"


def noise_png(path: Path, side: int = 64) -> Path:
    pixels = np.random.default_rng(5).integers(0, 256, (side, side, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)
    return path


def tensor_with(tmp_path: Path, name: str, **settings: Any) -> np.ndarray:
    defaults = {key: DEFAULTS["preprocess"][key] for key in NEW_PREPROCESS_VALUES}
    defaults["size"] = 24  # 64 -> 24: no whole factor, where linear and area agree
    tensor_path = tmp_path / f"{name}.npy"
    preprocess_image(
        noise_png(tmp_path / "noise.png"), tensor_path, tmp_path / f"{name}.png",
        **{**defaults, **settings},
    )  # fmt: skip
    return np.load(tensor_path, allow_pickle=False)


@pytest.mark.parametrize("name", NEW_PREPROCESS_VALUES)
def test_every_preprocess_setting_changes_the_tensor(name: str, tmp_path: Path) -> None:
    before = tensor_with(tmp_path, "before")
    after = tensor_with(tmp_path, "after", **{name: NEW_PREPROCESS_VALUES[name]})
    assert before.shape != after.shape or not np.array_equal(before, after), (
        f"preprocess.{name}: {NEW_PREPROCESS_VALUES[name]!r} gives the same tensor"
    )


def test_preprocess_threads_keep_the_bytes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    stems = [f"p_{i:03d}" for i in range(4)]
    for index, stem in enumerate(stems):
        noise_png(images / f"{stem}.png", side=40 + index)
    outputs = []
    for threads in (1, 2):
        folder = tmp_path / f"t{threads}"
        preprocess_prompt(
            images, folder / "tensors", folder / "previews", stems,
            size=32, grayscale=True, interpolation="auto", threads=threads,
        )  # fmt: skip
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.rglob("*.*"))})
    assert outputs[0] == outputs[1]


# ---- classification: the predictions

NOT_IN_THE_PREDICTIONS = {
    "classifier.gpu": "a resource (device in the JSON); numerics held by docs/equivalence.md",
    "classifier.backend": (
        "the same numbers by contract (tests/contract/test_golden.py); the JSON names it"
    ),
    "classifier.threads": "pinned (a param) so that no thread count can change the last bits",
}
CLASSIFIER_CHANGES = ("labels", "weights_seed", "weights")


def test_every_classifier_setting_is_placed() -> None:
    unplaced = unplaced_keys("classifier", CLASSIFIER_CHANGES, NOT_IN_THE_PREDICTIONS)
    assert unplaced == [], f"{unplaced}: say how they change the predictions, or why not"


def predictions(tmp_path: Path, name: str, classifier: dict[str, Any]) -> dict[str, Any]:
    """The prediction document of two noise tensors, made as the workflow makes it."""
    from sdcnn.classify.prediction import predict_prompt
    from sdcnn.classify.weights import init_weights, save_weights

    tensors = tmp_path / "tensors"
    if not tensors.exists():
        tensors.mkdir()
        rng = np.random.default_rng(0)
        for index in range(2):
            tensor = rng.random((1, 16, 16), dtype=np.float32)
            np.save(tensors / f"p_{index:03d}.npy", tensor, allow_pickle=False)
    weights = classifier["weights"]
    if weights in (None, "glorot"):
        weights = str(tmp_path / f"{name}.safetensors")
        seed, n_labels = classifier["weights_seed"], len(classifier["labels"])
        save_weights(weights, init_weights(seed, 1, 16, n_labels))
    document = predict_prompt(
        backend="torch", prompt_id="p", tensor_dir=str(tensors), image_ids=["p_000", "p_001"],
        weights_path=weights, labels=classifier["labels"],
        output_path=str(tmp_path / f"{name}.json"), gpus=0, threads=1, julia_project=REPO / "julia",
    )  # fmt: skip
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("name", CLASSIFIER_CHANGES)
def test_every_classifier_setting_changes_the_predictions(name: str, tmp_path: Path) -> None:
    from sdcnn.classify.weights import init_weights, save_weights

    base = copy.deepcopy(DEFAULTS["classifier"])
    base["labels"] = ["cat", "dog", "ship"]
    new = copy.deepcopy(base)
    if name == "labels":
        new["labels"] = ["cat", "ship", "dog"]
    elif name == "weights_seed":
        new["weights_seed"] = base["weights_seed"] + 1
    else:
        own = tmp_path / "own.safetensors"
        save_weights(own, init_weights(1234, 1, 16, 3))
        new["weights"] = str(own)
    before = predictions(tmp_path, "before", base)
    after = predictions(tmp_path, "after", new)
    before_images = [image["probabilities"] for image in before["images"]]
    after_images = [image["probabilities"] for image in after["images"]]
    assert before_images != after_images, f"classifier.{name} changed nothing in the JSON"


def test_generation_settings_are_the_rule_params() -> None:
    """The generate rule's settings param is asdict(GenerationSettings) of the config."""
    rule = (REPO / "rules" / "generate.smk").read_text(encoding="utf-8")
    assert "settings=PLAN.generation_settings()," in rule
    plan = RunPlan({**DEFAULTS, "shards": None}, {})
    expected = GenerationSettings.from_config(DEFAULTS["generation"])
    assert plan.generation_settings() == asdict(expected)
    settings = GenerationSettings.from_config(DEFAULTS["generation"])
    assert set(asdict(settings)) <= set(DEFAULTS["generation"])
