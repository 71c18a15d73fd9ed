"""How right the classifier is on images with a known label: plain Python, no NumPy.

Used by train_classifier (on its held-out images) and by the summary (on the
predictions the workflow made), so both report the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def confusion_counts(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    """Rows: the label an image was meant to show; columns: the label it was given."""
    index = {label: position for position, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for meant, given in zip(truth, predicted, strict=True):
        counts[index[meant]][index[given]] += 1
    return counts


def classification_metrics(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-label precision and recall (None where undefined: no image given or
    meant to show that label), the confusion matrix, and how many images."""
    counts = confusion_counts(truth, predicted, labels)
    per_label = {}
    for position, label in enumerate(labels):
        hits = counts[position][position]
        given = sum(row[position] for row in counts)
        meant = sum(counts[position])
        per_label[label] = {
            "precision": hits / given if given else None,
            "recall": hits / meant if meant else None,
            "support": meant,
        }
    n_images = len(truth)
    right = sum(counts[position][position] for position in range(len(labels)))
    return {
        "n_images": n_images,
        "accuracy": right / n_images if n_images else None,
        "per_label": per_label,
        "confusion_matrix": {"labels": list(labels), "rows_are": "label", "counts": counts},
    }
