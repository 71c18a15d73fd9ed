"""A shard of real images through the synthetic images' steps: their tensors (the
preprocess step's functions, the same settings) and their predictions (either backend,
one model load), written as a prediction file that says ``"source": "real"``.

    preprocess_real_shard({image_id: path}, "tensors/01-of-04", size=32, grayscale=True,
                          interpolation="auto")
    predict_real_shard(images, "tensors/01-of-04", "01-of-04.json", backend="torch", ...)

The prediction file is a ``sdcnn-predictions/1`` document of the shard (``prompt_id``
null, ``shard`` its name) whose images carry their own ``label`` (null: predict only)
and ``path`` in the real set; ``split`` is null: a real image is never trained on.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sdcnn.classify.prediction import predict_shard
from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_directory, write_json_atomic
from sdcnn.core.shards import PromptBatch, ShardLayout
from sdcnn.evaluate.real_images import preprocess_real_image

SOURCE = "real"


def real_tensor_path(tensor_dir: str | Path, image_id: str) -> Path:
    return Path(tensor_dir) / f"{image_id}.npy"


def preprocess_real_shard(
    files: Mapping[str, str | Path],
    tensor_dir: str | Path,
    *,
    size: int,
    grayscale: bool,
    interpolation: str,
    threads: int = 1,
) -> int:
    """Real image files (image id -> file) -> ``<tensor_dir>/<image id>.npy``, float32
    ``(C, size, size)`` in [0, 1]; the folder appears only once every image is done (a
    file refused names itself, and nothing is left).  Returns the number of images."""
    cv2.setNumThreads(1)  # parallel over images, not inside each small resize

    def one(item: tuple[str, str | Path], folder: Path) -> None:
        image_id, path = item
        tensor = preprocess_real_image(path, size, grayscale, interpolation)
        np.save(real_tensor_path(folder, image_id), tensor, allow_pickle=False)

    with atomic_directory(tensor_dir) as folder:
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda item: one(item, folder), files.items()))
        else:
            for item in files.items():
                one(item, folder)
    return len(files)


def real_prediction_document(
    predicted: Mapping[str, Any], shard: str, images: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The real shard's document from a backend's document of its tensors (``predicted``,
    one batch without a label): each image gets its ``path`` and ``label`` (``images``:
    image id -> {"path", "label"}) and ``correct``."""
    records = []
    for record in predicted["images"]:
        image = images[record["image_id"]]
        label = image["label"]
        records.append(
            {
                **record,
                "path": image["path"],
                "label": label,
                "split": None,
                "correct": None if label is None else record["top_label"] == label,
            }
        )
    if [record["image_id"] for record in records] != list(images):
        raise StepError(f"real shard {shard}: the backend did not predict its images in order")
    return {**predicted, "source": SOURCE, "prompt_id": None, "shard": shard, "images": records}


def predict_real_shard(
    images: Mapping[str, Mapping[str, Any]],
    tensor_dir: str | Path,
    output: str | Path,
    *,
    shard: str,
    backend: str,
    weights_path: str,
    labels: list[str],
    gpus: int,
    gpu_fallback: str = "fail",
    threads: int,
    julia_project: str | Path,
) -> dict[str, Any]:
    """A real shard's predictions (``images``: image id -> {"path", "label"}), one model load
    (one Julia process for ``flux``), written to ``output`` atomically; returns the document."""
    ids = list(images)
    batch = PromptBatch(shard, ids, [str(real_tensor_path(tensor_dir, i)) for i in ids])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as folder:
        backend_output = Path(folder) / "predicted.json"
        predict_shard(
            backend=backend,
            batches=[batch],
            weights_path=weights_path,
            labels=labels,
            output=backend_output,
            layout=ShardLayout(sharded=False),
            gpus=gpus,
            gpu_fallback=gpu_fallback,
            threads=threads,
            julia_project=julia_project,
        )
        predicted = json.loads(backend_output.read_text(encoding="utf-8"))
    document = real_prediction_document(predicted, shard, images)
    write_json_atomic(output, document)
    return document
