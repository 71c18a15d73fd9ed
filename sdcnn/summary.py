"""One table over every prompt's predictions, as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdcnn.fileio import write_bytes_atomic, write_json_atomic
from sdcnn.step import StepError

FIXED_COLUMNS = (
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
)


def prediction_files(outputs: Sequence[str | Path]) -> list[Path]:
    """The JSON files behind the predict outputs: files, or shards' folders of them."""
    files: list[Path] = []
    for output in map(Path, outputs):
        files += sorted(output.glob("*.json")) if output.is_dir() else [output]
    return files


def read_predictions(
    outputs: Sequence[str | Path], prompt_order: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The prediction documents of ``outputs``, in ``prompt_order`` when it is given (the
    config's order), else in the order found; they must all name the same labels."""
    documents = [
        json.loads(path.read_text(encoding="utf-8")) for path in prediction_files(outputs)
    ]
    if prompt_order is not None:
        by_id = {document["prompt_id"]: document for document in documents}
        missing = [prompt_id for prompt_id in prompt_order if prompt_id not in by_id]
        if missing:
            raise StepError(f"no predictions for the prompt(s) {', '.join(missing[:10])}")
        documents = [by_id[prompt_id] for prompt_id in prompt_order]
    label_sets = {tuple(document["labels"]) for document in documents}
    if len(label_sets) > 1:
        raise StepError(f"prediction files disagree on the labels: {sorted(label_sets)}")
    return documents


def summary_rows(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per image: the fixed columns, then ``p_<label>`` for every label."""
    rows = []
    for document in documents:
        for image in document["images"]:
            row = {
                "prompt_id": document["prompt_id"],
                "image_id": image["image_id"],
                "label": image.get("label"),
                "split": image.get("split"),
                "top_label": image["top_label"],
                "top_probability": image["top_probability"],
                "correct": image.get("correct"),
                "backend": document["backend"],
                "device": document["device"],
                "safety_flagged": image.get("safety_flagged"),
            }
            row.update({f"p_{label}": p for label, p in image["probabilities"].items()})
            rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    """A value as the CSV shows it: true/false as in the JSON, None as an empty cell."""
    return str(value).lower() if isinstance(value, bool) else value


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def write_summary(
    prediction_outputs: Sequence[str | Path],
    csv_path: str,
    json_path: str,
    prompt_order: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write the table as CSV and JSON; returns its metrics (see ``split_metrics``)."""
    documents = read_predictions(prediction_outputs, prompt_order)
    labels = documents[0]["labels"] if documents else []
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)]
    rows = summary_rows(documents)
    metrics = split_metrics(rows, labels)
    write_bytes_atomic(csv_path, csv_text(rows, columns).encode("utf-8"))
    write_json_atomic(json_path, {"columns": columns, "rows": rows, "metrics": metrics})
    return metrics


def accuracy_line(metrics: dict[str, Any]) -> str | None:
    """"held-out accuracy 0.958 (23 of 24 images right)", or None without labelled images."""
    held = metrics["holdout"]
    if not held["n_images"]:
        return None
    right = round(held["accuracy"] * held["n_images"])
    return (
        f"held-out accuracy {held['accuracy']:.3f} ({right} of {held['n_images']} images "
        "right)"
    )


def split_metrics(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """The classifier on the labelled images, per split ("holdout", "train"), from the
    predictions themselves: what the summary and the report's landing page say."""
    from sdcnn.metrics import classification_metrics

    metrics = {}
    for split in ("holdout", "train"):
        chosen = [row for row in rows if row["split"] == split]
        metrics[split] = classification_metrics(
            [row["label"] for row in chosen], [row["top_label"] for row in chosen], labels
        )
    return metrics
