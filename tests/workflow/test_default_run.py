"""The default config, run for real as `make run` runs it: the demo model draws the
prompts, and the classifier trained on its pictures reaches the held-out accuracy."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sdcnn.demo.pictures import describe_picture
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO

pytestmark = pytest.mark.pipeline

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))


def test_every_picture_shows_its_prompt(default_run: Path) -> None:
    """The independent checker reads each PNG's colour and shape; they are the prompt's."""
    wrong, seen = [], 0
    for png in sorted((default_run / "results" / "images").rglob("*.png")):
        with Image.open(png) as image:
            prompt = image.text["prompt"]
            pixels = np.asarray(image.convert("RGB"))
        _, colour, shape = prompt.split()
        seen += 1
        if describe_picture(pixels) != (colour, shape):
            wrong.append(f"{png.name}: {prompt!r} reads as {describe_picture(pixels)}")
    expected = sum(prompt["n_images"] for prompt in DEFAULT["prompts"].values())
    assert seen == expected, f"{seen} pictures, the config asks for {expected}"
    assert wrong == [], "pictures that do not show their prompt:\n" + "\n".join(wrong)


def test_the_held_out_accuracy_is_reached_and_reported(default_run: Path) -> None:
    results = default_run / "results"
    with open(results / "summary.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    held = [row for row in rows if row["split"] == "holdout"]
    every = DEFAULT["training"]["holdout_every"]
    assert len(held) == sum(p["n_images"] // every for p in DEFAULT["prompts"].values())
    assert all(row["label"] in DEFAULT["classifier"]["labels"] for row in rows)
    right = sum(row["correct"] == "true" for row in held)
    accuracy = right / len(held)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f} ({right} of {len(held)})"
    metrics = json.loads((results / "summary.json").read_text())["metrics"]["holdout"]
    assert metrics["accuracy"] == accuracy
    trained = json.loads((results / "training" / "metrics.json").read_text())["holdout"]
    assert trained["accuracy"] == accuracy, "training's own measure disagrees with predict's"


def test_two_runs_train_the_same_bytes(default_run: Path, tmp_path: Path) -> None:
    """The training rule is deterministic: trained once more, in a copy of the finished run,
    it writes byte-identical weights, metrics and figures."""
    second = tmp_path / "second"
    shutil.copytree(default_run, second, symlinks=True)
    result = run_snakemake(second, "--forcerun", "train_classifier", "--until", "train_classifier")
    assert "train_classifier" in result.stderr, "the training did not run again"
    for name in ("weights/trained.safetensors", "training/metrics.json", "training/curve.png"):
        assert (second / "results" / name).stat().st_mtime_ns > (
            default_run / "results" / name
        ).stat().st_mtime_ns, f"results/{name} was not written again"
        assert (second / "results" / name).read_bytes() == (
            default_run / "results" / name
        ).read_bytes(), f"results/{name} differs between two trainings"
