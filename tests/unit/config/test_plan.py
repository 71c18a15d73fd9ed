"""The workflow's plan of a checked config (sdcnn/config/plan.py), without a Snakemake run:
shards and their prompts, truth, training, output paths, the generate rule's params."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from sdcnn.config.check import check_config, load_schema
from sdcnn.config.plan import (
    INIT_WEIGHTS_PATH,
    TRAINED_WEIGHTS_PATH,
    RunPlan,
    UnknownShard,
    prompt_id_pattern,
)
from sdcnn.config.prompts import checked_prompts
from sdcnn.config.values import image_channels, weights_mode
from sdcnn.core.shards import assign_shards
from sdcnn.generate.pipeline import GenerationSettings
from tests.support.settings import DEFAULTS
from tests.support.workspace import REPO

SCHEMA_PATH = REPO / "config" / "schema.yaml"
PROMPTS = {
    "city": {"text": "A city", "n_images": 3, "label": "ship"},
    "harbor": {"text": "A harbor", "negative_prompt": "blurry", "n_images": 2},
    "tree": {"text": "A tree", "n_images": 1, "label": "cat"},
    "bike": {"text": "A bike", "n_images": 4},
}


def plan_of(**overrides: Any) -> RunPlan:
    config: dict[str, Any] = {
        "prompts": copy.deepcopy(PROMPTS),
        "classifier": {"labels": ["cat", "dog", "ship"], "weights": "trained"},
        "training": {"holdout_every": 3},
        "figures": {"charts": 5, "contact_sheets": 3},
        "preprocess": {"size": 32},
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            config.setdefault(section, {})[name] = value
        else:
            config[section] = value
    check_config(config, SCHEMA_PATH)
    return RunPlan(config, checked_prompts(config, load_schema(SCHEMA_PATH)))


def test_without_shards_each_prompt_is_its_own_shard() -> None:
    plan = plan_of()
    assert not plan.sharded
    assert plan.shards == {prompt_id: [prompt_id] for prompt_id in PROMPTS}
    assert plan.shard_file("predictions", ".json") == "results/predictions/{shard}.json"
    assert plan.prediction_outputs() == [f"results/predictions/{p}.json" for p in PROMPTS]


def test_with_shards_a_shard_holds_a_folder_per_kind() -> None:
    plan = plan_of(shards=2)
    assert plan.sharded
    assert plan.shards == assign_shards(PROMPTS, 2)
    assert sorted(p for ids in plan.shards.values() for p in ids) == sorted(PROMPTS)
    assert plan.shard_file("predictions", ".json") == "results/predictions/{shard}"
    assert plan.prediction_outputs() == [f"results/predictions/{s}" for s in plan.shards]


def test_a_shards_prompts_images_and_truth() -> None:
    plan = plan_of()
    assert plan.shard_prompt_specs("harbor") == [
        {"prompt_id": "harbor", "text": "A harbor", "negative_prompt": "blurry", "n_images": 2}
    ]
    assert plan.shard_images("city") == {"city": 3}
    assert plan.shard_truth("harbor") == {"labels": {"harbor": None}, "holdout_every": 3}
    assert plan.shard_truth("tree")["labels"] == {"tree": "cat"}


def test_an_unknown_shard_is_named() -> None:
    with pytest.raises(UnknownShard, match="'nope' is not a shard of this config .without"):
        plan_of().shard_images("nope")
    with pytest.raises(UnknownShard, match="'city' is not a shard of this config$"):
        plan_of(shards=2).shard_images("city")


def test_training_learns_from_the_labelled_prompts_and_their_shards() -> None:
    plan = plan_of(shards=3)
    shard_of = {p: shard for shard, ids in plan.shards.items() for p in ids}
    assert plan.labelled_prompts == [
        {
            "prompt_id": p,
            "label": PROMPTS[p]["label"],
            "n_images": PROMPTS[p]["n_images"],
            "shard": shard_of[p],
        }
        for shard in plan.shards
        for p in plan.shards[shard]
        if "label" in PROMPTS[p]
    ]
    assert plan.labelled_shards() == sorted({shard_of["city"], shard_of["tree"]})
    images = plan.training_images({"device": "cpu"}, {"source": "demo"})
    assert images["prompts"] == {"city": ["A city", ""], "tree": ["A tree", ""]}
    assert images["runtime"] == {"device": "cpu"} and images["model"] == {"source": "demo"}
    assert images["preprocess"] == {"size": 32, "grayscale": True, "interpolation": "auto"}


@pytest.mark.parametrize(
    ("weights", "mode", "path"),
    [
        ("trained", "trained", TRAINED_WEIGHTS_PATH),
        ("glorot", "glorot", INIT_WEIGHTS_PATH),
        (None, "glorot", INIT_WEIGHTS_PATH),
    ],
)
def test_the_weights_predict_runs_with(weights: str | None, mode: str, path: str) -> None:
    plan = plan_of(classifier__weights=weights)
    assert plan.weights_mode == mode == weights_mode(weights)
    assert plan.weights_path() == path
    assert (path in plan.data_outputs()) and (INIT_WEIGHTS_PATH in plan.data_outputs()) == (
        mode == "glorot"
    )
    assert bool(plan.training_outputs()) == (mode == "trained")


def test_the_cnn_follows_the_preprocessing_and_the_labels() -> None:
    plan = plan_of(preprocess__grayscale=False, preprocess__size=48)
    assert plan.cnn_architecture() == {"in_channels": 3, "image_size": 48, "n_labels": 3}
    assert image_channels({"grayscale": True}) == 1


def test_figures_are_shared_out_by_shard_number() -> None:
    plan = plan_of(shards=2)
    shares = [plan.figures_share("charts", shard) for shard in plan.shards]
    assert sum(shares) <= 5 and max(shares) - min(shares) <= 1
    assert plan_of().figures_share("charts", "city") == 5  # each prompt may have them all


def test_final_outputs_cover_every_kind() -> None:
    plan = plan_of(shards=2)
    outputs = plan.final_outputs()
    assert len(outputs) == len(set(outputs))
    for kind in (
        "images",
        "tensors",
        "previews",
        "predictions",
        "charts",
        "contact_sheets",
        "dataset",
    ):
        assert sum(f"results/{kind}/" in path for path in outputs) == len(plan.shards)
    assert {"results/manifest.json", "results/summary.html", "results/training/curve.png"} <= set(
        outputs
    )
    assert plan.image_count() == 10


def test_a_local_model_is_an_input_the_demo_is_not(tmp_path: Path) -> None:
    assert plan_of().model_input() == {}
    (tmp_path / "model_index.json").write_text("{}")
    plan = plan_of(model__source=str(tmp_path))
    assert plan.model_input() == {"model_index": str(tmp_path / "model_index.json")}


def test_the_wildcard_pattern_is_the_schemas_prompt_id() -> None:
    import re

    pattern = re.compile(prompt_id_pattern(load_schema(SCHEMA_PATH)))
    assert pattern.fullmatch("city_01") and pattern.fullmatch("03-of-16")
    assert (
        not pattern.fullmatch("a/b") and not pattern.fullmatch("..") and not pattern.fullmatch("_x")
    )


def test_generation_settings_are_the_rule_params() -> None:
    """The generate rule's settings param is asdict(GenerationSettings) of the config."""
    rule = (REPO / "rules" / "generate.smk").read_text(encoding="utf-8")
    assert "settings=PLAN.generation_settings()," in rule
    plan = RunPlan({**DEFAULTS, "shards": None}, {})
    expected = GenerationSettings.from_config(DEFAULTS["generation"])
    assert plan.generation_settings() == asdict(expected)
    settings = GenerationSettings.from_config(DEFAULTS["generation"])
    assert set(asdict(settings)) <= set(DEFAULTS["generation"])


def real_set(n: int) -> list:
    from sdcnn.evaluate.real_images import RealImage, real_image_id

    paths = [f"{'cat' if i % 2 else 'dog'}/{i}.png" for i in range(n)]
    return [
        RealImage(real_image_id(p), Path("set") / p, None if i == 0 else p[:3], p)
        for i, p in enumerate(paths)
    ]


def test_real_images_have_shards_of_their_own() -> None:
    from sdcnn.config.plan import EVALUATION_CONFUSION, EVALUATION_JSON, REAL_PREDICTIONS

    plan = plan_of()
    assert not plan.evaluates and plan.evaluation_outputs() == plan.evaluation_figures() == []
    assert plan.real_prediction_outputs() == []
    images = real_set(9)
    config = {**plan.config, "evaluation": {**plan.config["evaluation"], "shards": 3}}
    plan = RunPlan(config, plan.prompts, images)
    shards = assign_shards([image.image_id for image in images], 3)
    assert list(plan.real_shards) == list(shards) and plan.evaluates
    for shard, ids in shards.items():
        assert list(plan.real_shard_paths(shard)) == ids
        by_id = {image.image_id: image for image in images}
        assert plan.real_shard_files(shard) == [str(by_id[i].path) for i in ids]
        assert plan.real_shard_paths(shard) == {i: by_id[i].relative for i in ids}
        assert plan.real_shard_labels(shard) == {i: by_id[i].label for i in ids}
    assert plan.real_prediction_outputs() == [
        REAL_PREDICTIONS.replace("{real_shard}", shard) for shard in shards
    ]
    assert plan.evaluation_outputs() == [EVALUATION_JSON]
    assert plan.evaluation_figures() == [EVALUATION_CONFUSION]
    assert EVALUATION_JSON in plan.data_outputs()
    assert EVALUATION_CONFUSION in plan.report_outputs()
    assert all(path in plan.data_outputs() for path in plan.real_prediction_outputs())
    with pytest.raises(UnknownShard, match="real images"):
        plan.real_shard_images("9-of-9")


def test_the_diversity_settings_are_the_configs() -> None:
    plan = plan_of(evaluation={"diversity": {"max_hamming": 2, "hash": "dhash"}})
    assert plan.diversity_settings() == {
        "hash": "dhash",
        "max_hamming": 2,
        "min_mean_distance": 0.05,
        "max_duplicate_share": 0.0,
    }
