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

FIXED_COLUMNS = ("prompt_id", "image_id", "top_label", "top_probability", "backend", "device")


def read_predictions(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    documents = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
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
                "top_label": image["top_label"],
                "top_probability": image["top_probability"],
                "backend": document["backend"],
                "device": document["device"],
            }
            row.update({f"p_{label}": p for label, p in image["probabilities"].items()})
            rows.append(row)
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_summary(prediction_paths: Sequence[str | Path], csv_path: str, json_path: str) -> None:
    documents = read_predictions(prediction_paths)
    labels = documents[0]["labels"] if documents else []
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)]
    rows = summary_rows(documents)
    write_bytes_atomic(csv_path, csv_text(rows, columns).encode("utf-8"))
    write_json_atomic(json_path, {"columns": columns, "rows": rows})
