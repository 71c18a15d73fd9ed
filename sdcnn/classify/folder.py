"""A folder of images through the CNN, from Python: ``classify_folder``.

scores = classify_folder("images", "results/weights/trained.safetensors", size=224)
scores["city_000.png"]  # {"cat": 0.1, "dog": 0.2, "ship": 0.7}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sdcnn.classify.cnn import FluxCNN
from sdcnn.classify.prediction import predict_torch
from sdcnn.classify.weights import check_compatible, load_weights
from sdcnn.core.errors import StepError
from sdcnn.preprocess.image_to_tensor import read_image, to_tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def classify_folder(
    folder: str | Path,
    weights_path: str | Path,
    *,
    size: int,
    labels: Sequence[str] | None = None,
    interpolation: str = "auto",
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """The CNN's label probabilities for each image file in ``folder``, by file name:
    preprocessed as the workflow does (``size`` x ``size``, gray if the weights take one
    channel) and run through the weights at ``weights_path`` with torch.  ``labels``
    default to those the weights file records."""
    weights = load_weights(weights_path)
    names = list(labels if labels is not None else weights.labels or [])
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise StepError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    gray = weights.in_channels == 1
    batch = np.stack([to_tensor(read_image(p), size, gray, interpolation) for p in paths])
    check_compatible(weights, str(weights_path), names, batch.shape[1:])
    probabilities = predict_torch(FluxCNN(weights), batch, device)
    return {
        path.name: {label: float(p) for label, p in zip(names, row, strict=True)}
        for path, row in zip(paths, probabilities, strict=True)
    }
