"""The run as a training data set: WebDataset tar shards, one record per image.

``results/dataset/<shard>.tar`` holds, per image in the prompts' and images' order,
two members with one key, the image id (WebDataset's layout: a sample is the files
that share a basename up to the first dot):

- ``<image_id>.png``: the generated PNG, byte for byte (its text chunks included);
- ``<image_id>.json``: the record (``RECORD_FIELDS``): prompt, label, seed, split and
  the classifier's predictions.

Read them with the ``webdataset`` library (``wds.WebDataset(urls).decode("pil")``), with
any tar reader, or stream them from object storage: a shard is one sequential read, and
a run of a million images is a hundred files instead of four million.  The tar is
deterministic (members in a fixed order, mtime 0, no owner): the same run gives the same
bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_path
from sdcnn.core.naming import image_ids
from sdcnn.core.png_text import SEED, read_png_text
from sdcnn.core.shards import ShardLayout

SCHEMA = "sdcnn-dataset/1"
RECORD_FIELDS = (  # a record's keys, in its order
    "schema",
    "prompt_id",
    "image_id",
    "prompt",
    "negative_prompt",
    "label",
    "seed",
    "split",
    "top_label",
    "top_probability",
    "correct",
    "probabilities",
    "safety_flagged",
)


def png_text(data: bytes) -> dict[str, str]:
    """The text chunks of PNG bytes (the pixels are not decoded)."""
    try:
        return read_png_text(data)
    except OSError as error:
        raise StepError(f"not a readable PNG: {error}") from error


def image_record(
    prompt: dict[str, Any], image: dict[str, Any], text: dict[str, str]
) -> dict[str, Any]:
    """One image's record: its prompt, the label its prompt means, its seed (from its PNG),
    its split and the classifier's predictions (from the prediction file)."""
    seed = text.get(SEED)
    record = {
        "schema": SCHEMA,
        "prompt_id": prompt["prompt_id"],
        "image_id": image["image_id"],
        "prompt": prompt["text"],
        "negative_prompt": prompt["negative_prompt"],
        "label": image.get("label"),
        "seed": int(seed) if seed not in (None, "") else None,
        "split": image.get("split"),
        "top_label": image["top_label"],
        "top_probability": image["top_probability"],
        "correct": image.get("correct"),
        "probabilities": image["probabilities"],
        "safety_flagged": image.get("safety_flagged"),
    }
    return record


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def shard_samples(
    prompts: Sequence[dict[str, Any]],
    layout: ShardLayout,
    predictions: str | Path,
    image_dir: str | Path,
) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """(key, PNG bytes, record) of every image of a shard, one prompt file at a time."""
    for prompt in prompts:
        prompt_id = prompt["prompt_id"]
        path = layout.file(predictions, prompt_id, ".json")
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            images = document["images"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StepError(f"{path}: not a readable prediction file: {error}") from error
        expected = image_ids(prompt_id, prompt["n_images"])
        if [image["image_id"] for image in images] != expected:
            raise StepError(f"{path}: does not hold the images {expected[:3]}…")
        for image in images:
            png = layout.folder(image_dir, prompt_id) / f"{image['image_id']}.png"
            try:
                data = png.read_bytes()
                text = png_text(data)
            except (OSError, StepError) as error:
                raise StepError(f"{png}: {error}") from error
            yield image["image_id"], data, image_record(prompt, image, text)


def write_shard_dataset(
    *,
    prompts: Sequence[dict[str, Any]],
    layout: ShardLayout,
    predictions: str | Path,
    image_dir: str | Path,
    output_path: str | Path,
) -> int:
    """A shard's WebDataset tar (written atomically); returns the number of records."""
    count = 0
    with (
        atomic_path(output_path) as tmp,
        tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for key, png, record in shard_samples(prompts, layout, predictions, image_dir):
            text = json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"
            tar.addfile(*_member(f"{key}.png", png))
            tar.addfile(*_member(f"{key}.json", text.encode("utf-8")))
            count += 1
    return count
