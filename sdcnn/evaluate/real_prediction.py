"""A shard of real images' predictions (either backend, one model load), written as a
prediction file that says ``"source": "real"``.

    predict_real_shard(images, "tensors/01-of-04", "01-of-04.json", shard="01-of-04",
                       backend="torch", ...)

The file is a ``sdcnn-predictions/1`` document of the shard (``prompt_id`` null,
``shard`` its name) whose images carry their own ``label`` (null: predict only) and
``path`` in the real set; ``split`` is null: a real image is never trained on.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdcnn.classify.prediction import predict_shard
from sdcnn.core.errors import StepError
from sdcnn.core.fileio import write_json_atomic
from sdcnn.core.naming import tensor_path
from sdcnn.core.shards import PromptBatch, ShardLayout

SOURCE = "real"


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
    batch = PromptBatch(shard, ids, [str(tensor_path(tensor_dir, i)) for i in ids])
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
