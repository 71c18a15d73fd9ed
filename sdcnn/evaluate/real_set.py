"""A real set scored from Python, as the workflow scores it: ``evaluate_real_set``.

metrics = evaluate_real_set("photos", "results/weights/trained.safetensors", size=32)
print(evaluation_line(metrics))  # "... real accuracy 0.800 (8 of 10), gap n/a"
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sdcnn.classify.weights import read_header
from sdcnn.core.errors import StepError
from sdcnn.evaluate.real_images import read_real_images
from sdcnn.evaluate.real_prediction import predict_real_shard
from sdcnn.evaluate.real_shard import preprocess_real_shard
from sdcnn.evaluate.scores import RealCounts, evaluation_metrics


def evaluate_real_set(
    source: str | Path,
    weights_path: str | Path,
    *,
    size: int,
    labels: Sequence[str] | None = None,
    interpolation: str = "auto",
    holdout: Mapping[str, Any] | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """The ``sdcnn-evaluation/1`` metrics of the real set at ``source`` (a folder in
    ImageFolder layout or a sheet, checked by decoding every file) through the weights at
    ``weights_path``, with torch on the CPU, preprocessed as the workflow does (``size``,
    gray if the weights take one channel).  ``labels`` default to those the weights file
    records; ``holdout``: the held-out images' ``classification_metrics``, for the gap."""
    header = read_header(weights_path)
    names = list(labels if labels is not None else header.labels or [])
    if not names:
        raise StepError(f"{weights_path} records no labels: give labels=[...]")
    images = read_real_images(source, names, check="decode")
    with tempfile.TemporaryDirectory(prefix="sdcnn-real-") as folder:
        tensors = Path(folder) / "tensors"
        preprocess_real_shard(
            {image.image_id: image.path for image in images},
            tensors,
            size=size,
            grayscale=header.in_channels == 1,
            interpolation=interpolation,
            threads=threads,
        )
        document = predict_real_shard(
            {image.image_id: {"path": image.relative, "label": image.label} for image in images},
            tensors,
            Path(folder) / "predictions.json",
            shard="all",
            backend="torch",
            weights_path=str(weights_path),
            labels=names,
            gpus=0,
            threads=threads,
            julia_project=Path(folder),
        )
    return evaluation_metrics(RealCounts.from_documents([document]), holdout)
