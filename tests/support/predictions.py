"""Made-up prediction documents, shared by the tests of the summary and the manifest
(tests/unit/reporting/test_summary.py, tests/unit/reporting/test_manifest.py).

Every probability is distinct, so a value under another label's column, another image's
row or another file's hash cannot pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = ["cat", "dog", "ship"]


def prediction(
    prompt_id: str, rows: list[list[float]], backend: str = "torch", labels: list[str] | None = None
) -> dict[str, Any]:
    labels = LABELS if labels is None else labels
    images = []
    for index, values in enumerate(rows):
        probabilities = dict(zip(labels, values, strict=True))
        top = max(probabilities, key=probabilities.__getitem__)
        images.append(
            {
                "image_id": f"{prompt_id}_{index:03d}",
                "probabilities": probabilities,
                "top_label": top,
                "top_probability": probabilities[top],
            }
        )
    device = "cuda" if backend == "flux" else "cpu"
    return {
        "prompt_id": prompt_id,
        "backend": backend,
        "device": device,
        "labels": labels,
        "images": images,
    }


DOCUMENTS = [
    prediction("city", [[0.125, 0.5, 0.375], [0.6, 0.15, 0.25]]),
    prediction("harbor", [[0.1, 0.2000001, 0.6999999]], backend="flux"),
]


def write_documents(folder: Path, documents: list[dict[str, Any]]) -> list[Path]:
    paths = []
    for document in documents:
        path = folder / f"{document['prompt_id']}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        paths.append(path)
    return paths
