"""The data set export (sdcnn/export/webdataset_tars.py): WebDataset tar shards, read back with the
``webdataset`` library's own reader, one record per image."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sdcnn.core.errors import StepError
from sdcnn.core.shards import ShardLayout
from sdcnn.export.webdataset_tars import RECORD_FIELDS, SCHEMA, write_shard_dataset

LABELS = ["circle", "square"]
PROMPTS = [
    {"prompt_id": "red-circle", "text": "a red circle", "negative_prompt": "", "n_images": 3},
    {"prompt_id": "sky", "text": "a sky", "negative_prompt": "blurry", "n_images": 2},
]
MEANT = {"red-circle": "circle", "sky": None}


def make_shard(root: Path) -> dict[str, Path]:
    """Images (with their seed chunks) and predictions of PROMPTS in one shard."""
    rng = np.random.default_rng(0)
    images, predictions = root / "images", root / "predictions"
    for prompt in PROMPTS:
        prompt_id = prompt["prompt_id"]
        folder = images / prompt_id
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for index in range(prompt["n_images"]):
            image_id = f"{prompt_id}_{index:03d}"
            info = PngImagePlugin.PngInfo()
            info.add_itxt("seed", str(1000 + index))
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{image_id}.png", pnginfo=info)
            p = float(rng.uniform(0.5, 1.0))
            probabilities = {"circle": p, "square": 1 - p}
            meant = MEANT[prompt_id]
            entries.append(
                {
                    "image_id": image_id,
                    "label": meant,
                    "split": None if meant is None else ("holdout" if index == 2 else "train"),
                    "probabilities": probabilities,
                    "top_label": "circle",
                    "top_probability": p,
                    "correct": None if meant is None else meant == "circle",
                    "safety_flagged": None,
                }
            )
        path = predictions / f"{prompt_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"prompt_id": prompt_id, "labels": LABELS, "images": entries}
        path.write_text(json.dumps(document))
    return {"images": images, "predictions": predictions}


def shard_inputs(shard: dict[str, Path]) -> dict[str, Path]:
    return {"predictions": shard["predictions"], "image_dir": shard["images"]}


def export(tmp_path: Path, name: str = "0-of-1.tar") -> Path:
    shard = make_shard(tmp_path / "results")
    out = tmp_path / "dataset" / name
    count = write_shard_dataset(
        prompts=PROMPTS, layout=ShardLayout(True), output_path=out, **shard_inputs(shard)
    )
    assert count == sum(prompt["n_images"] for prompt in PROMPTS)
    return out


def test_webdataset_reads_one_record_per_image(tmp_path: Path) -> None:
    try:
        import webdataset as wds
    except ImportError:
        pytest.fail("webdataset is not installed (it is pinned in requirements-dev.txt)")
    tar = export(tmp_path)
    samples = list(wds.WebDataset(str(tar), shardshuffle=False).decode("pil"))
    keys = [f"{p['prompt_id']}_{i:03d}" for p in PROMPTS for i in range(p["n_images"])]
    assert [sample["__key__"] for sample in samples] == keys
    for sample in samples:
        record = sample["json"]
        assert tuple(record) == RECORD_FIELDS and record["schema"] == SCHEMA
        assert record["image_id"] == sample["__key__"]
        prompt_id = record["prompt_id"]
        png = tmp_path / "results" / "images" / prompt_id / f"{record['image_id']}.png"
        with Image.open(png) as original:
            assert np.array_equal(np.asarray(sample["png"]), np.asarray(original.convert("RGB")))
        assert record["seed"] == 1000 + int(record["image_id"][-3:])
        assert record["label"] == MEANT[prompt_id]
        assert record["prompt"] == next(p["text"] for p in PROMPTS if p["prompt_id"] == prompt_id)
        expected = json.loads(
            (tmp_path / "results" / "predictions" / f"{prompt_id}.json").read_text()
        )["images"][int(record["image_id"][-3:])]
        for key in ("split", "probabilities", "top_label", "top_probability", "correct"):
            assert record[key] == expected[key], key
    splits = [sample["json"]["split"] for sample in samples]
    assert splits == ["train", "train", "holdout", None, None]


def test_the_tar_holds_the_pngs_bytes_and_is_the_same_every_time(tmp_path: Path) -> None:
    first = export(tmp_path, "a.tar")
    second = export(tmp_path / "again", "a.tar")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:2]] == ["red-circle_000.png", "red-circle_000.json"]
        assert {m.mtime for m in members} == {0} and {m.uname for m in members} == {""}
        png = tar.extractfile(members[0]).read()
    original = tmp_path / "results" / "images" / "red-circle" / "red-circle_000.png"
    assert png == original.read_bytes()
    assert Image.open(io.BytesIO(png)).text["seed"] == "1000"


def test_a_prediction_file_that_misses_images_is_refused(tmp_path: Path) -> None:
    shard = make_shard(tmp_path / "results")
    path = shard["predictions"] / "sky.json"
    document = json.loads(path.read_text())
    document["images"] = document["images"][:1]
    path.write_text(json.dumps(document))
    out = tmp_path / "dataset" / "x.tar"
    with pytest.raises(StepError, match="sky.json"):
        write_shard_dataset(
            prompts=PROMPTS, layout=ShardLayout(True), output_path=out, **shard_inputs(shard)
        )
    assert not out.exists()
