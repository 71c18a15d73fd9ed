"""The whole workflow, run for real on a small config (the ``small_run`` fixture)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcnn.core.fileio import sha256_file
from sdcnn.core.seeds import image_seed
from tests.support.configs import SMALL_CONFIG
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.pipeline

PROMPTS = SMALL_CONFIG["prompts"]
LABELS = SMALL_CONFIG["classifier"]["labels"]
SIZE = SMALL_CONFIG["preprocess"]["size"]


def stems(prompt_id: str) -> list[str]:
    return [f"{prompt_id}_{i:03d}" for i in range(PROMPTS[prompt_id]["n_images"])]


def test_images_per_prompt_with_metadata(small_run: Path) -> None:
    for prompt_id, prompt in PROMPTS.items():
        folder = small_run / "results" / "images" / prompt_id
        assert sorted(p.stem for p in folder.glob("*.png")) == stems(prompt_id)
        for index, stem in enumerate(stems(prompt_id)):
            with Image.open(folder / f"{stem}.png") as image:
                assert image.size == (64, 64)
                assert image.mode == "RGB"
                text = dict(image.text)
            assert text["prompt"] == prompt["text"]
            assert text["negative_prompt"] == prompt.get("negative_prompt", "")
            assert int(text["seed"]) == image_seed(7, prompt_id, index)
            assert text["steps"] == "2"
            assert text["guidance_scale"] == "7.5"
            assert text["model"] == "demo"
            assert text["scheduler"] == "default"


def test_images_differ_between_seeds(small_run: Path) -> None:
    folder = small_run / "results" / "images" / "city"
    pixels = [np.asarray(Image.open(folder / f"{stem}.png")) for stem in stems("city")]
    assert not np.array_equal(pixels[0], pixels[1])


def test_tensors_are_float32_in_unit_range(small_run: Path) -> None:
    for prompt_id in PROMPTS:
        for stem in stems(prompt_id):
            tensor = np.load(small_run / "results" / "tensors" / prompt_id / f"{stem}.npy")
            assert tensor.dtype == np.float32
            assert tensor.shape == (1, SIZE, SIZE)
            assert tensor.min() >= 0.0 and tensor.max() <= 1.0
            assert tensor.std() > 0  # an image, not a constant
            with Image.open(small_run / "results" / "previews" / prompt_id / f"{stem}.png") as prev:
                assert prev.size == (SIZE, SIZE) and prev.mode == "L"


def test_predictions_per_prompt(small_run: Path) -> None:
    weights = small_run / "results" / "weights" / "trained.safetensors"
    for prompt_id in PROMPTS:
        path = small_run / "results" / "predictions" / f"{prompt_id}.json"
        document = json.loads(path.read_text())
        assert document["schema"] == "sdcnn-predictions/1"
        assert document["prompt_id"] == prompt_id
        assert document["backend"] == "torch"
        assert document["device"] == "cpu"
        assert document["labels"] == LABELS
        assert document["weights"]["sha256"] == sha256_file(weights)
        assert [image["image_id"] for image in document["images"]] == stems(prompt_id)
        for image in document["images"]:
            probabilities = image["probabilities"]
            assert list(probabilities) == LABELS
            assert abs(sum(probabilities.values()) - 1.0) <= 1e-5
            assert all(0.0 < p < 1.0 for p in probabilities.values())
            assert image["top_label"] == max(probabilities, key=probabilities.get)
            assert image["top_probability"] == probabilities[image["top_label"]]
            assert image["tensor_sha256"] == sha256_file(small_run / image["tensor"])


def test_summary_covers_every_image(small_run: Path) -> None:
    with open(small_run / "results" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [stem for prompt_id in PROMPTS for stem in stems(prompt_id)]
    assert [row["image_id"] for row in rows] == expected
    assert list(rows[0]) == [
        "prompt_id",
        "image_id",
        "label",
        "split",
        "top_label",
        "top_probability",
        "correct",
        "backend",
        "device",
        "safety_flagged",
        *(f"p_{label}" for label in LABELS),
    ]
    holdout_every = SMALL_CONFIG["training"]["holdout_every"]
    for row in rows:
        prompt_id = row["prompt_id"]
        index = int(row["image_id"].rsplit("_", 1)[1])
        assert row["label"] == PROMPTS[prompt_id]["label"], row
        expected_split = "holdout" if index % holdout_every == holdout_every - 1 else "train"
        assert row["split"] == expected_split, row
        assert row["correct"] == str(row["top_label"] == row["label"]).lower(), row
    summary = json.loads((small_run / "results" / "summary.json").read_text())
    assert [row["image_id"] for row in summary["rows"]] == expected
    assert summary["columns"] == list(rows[0])


def test_second_invocation_has_nothing_to_do(small_run: Path) -> None:
    result = run_snakemake(small_run, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_two_fresh_runs_are_byte_identical(small_run: Path, tmp_path: Path) -> None:
    second = copy_workflow(tmp_path / "second", SMALL_CONFIG)
    run_snakemake(second)
    first_files, second_files = result_files(small_run), result_files(second)
    assert any(name.startswith("images/") for name in first_files)
    assert sorted(first_files) == sorted(second_files)
    different = [name for name in first_files if first_files[name] != second_files[name]]
    assert different == []
