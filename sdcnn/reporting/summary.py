"""One table over every prompt's predictions, as CSV and JSON; the JSON also holds the
classifier's metrics, each prompt's diversity and the scores on real images."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_path, dumps_json, dumps_json_around
from sdcnn.evaluate.diversity_results import least_diverse
from sdcnn.evaluate.scores import RealCounts, evaluation_metrics

SPLITS = ("holdout", "train")
LEAST_DIVERSE = 5  # prompts the report's front page names for their diversity
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


def ordered_files(
    outputs: Sequence[str | Path], prompt_order: Sequence[str] | None = None
) -> list[Path]:
    """The prediction files of ``outputs`` (each named ``<prompt_id>.json``), in
    ``prompt_order`` when it is given (the config's order), else in the order found."""
    files = prediction_files(outputs)
    if prompt_order is None:
        return files
    by_id = {path.stem: path for path in files}
    missing = [prompt_id for prompt_id in prompt_order if prompt_id not in by_id]
    if missing:
        raise StepError(f"no predictions for the prompt(s) {', '.join(missing[:10])}")
    return [by_id[prompt_id] for prompt_id in prompt_order]


def iter_predictions(
    outputs: Sequence[str | Path], prompt_order: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The prediction documents of ``outputs``, one at a time (see ``ordered_files``);
    they must all name the same labels."""
    labels = None
    for path in ordered_files(outputs, prompt_order):
        document = json.loads(path.read_text(encoding="utf-8"))
        if labels is None:
            labels = document["labels"]
        elif document["labels"] != labels:
            found = sorted({tuple(labels), tuple(document["labels"])})
            raise StepError(f"prediction files disagree on the labels: {found}")
        yield document


def read_all_predictions(
    outputs: Sequence[str | Path], prompt_order: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every prediction document of ``outputs`` at once (``iter_predictions``)."""
    return list(iter_predictions(outputs, prompt_order))


def summary_rows(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per image: the fixed columns, then ``p_<label>`` for every label."""
    return [row for document in documents for row in document_rows(document)]


def document_rows(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
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
        yield row


def _cell(value: Any) -> Any:
    """A value as the CSV shows it: true/false as in the JSON, None as an empty cell."""
    return str(value).lower() if isinstance(value, bool) else value


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


class SplitCounter:
    """The (label, top label) pairs of the labelled rows per split, kept as counts: what
    ``split_metrics`` needs, in memory that grows with the labels, not with the rows."""

    def __init__(self) -> None:
        self.pairs: dict[str, Counter[tuple[str, str]]] = {s: Counter() for s in SPLITS}

    def add(self, row: dict[str, Any]) -> None:
        if row["split"] in self.pairs:
            self.pairs[row["split"]][(row["label"], row["top_label"])] += 1

    def metrics(self, labels: Sequence[str]) -> dict[str, Any]:
        from sdcnn.classify.metrics import classification_metrics

        metrics = {}
        for split, pairs in self.pairs.items():
            truth = [meant for (meant, _), n in pairs.items() for _ in range(n)]
            given = [top for (_, top), n in pairs.items() for _ in range(n)]
            metrics[split] = classification_metrics(truth, given, labels)
        return metrics


def _json_row(row: dict[str, Any]) -> str:
    """A row as ``dumps_json`` writes it inside the table's "rows" list."""
    text = json.dumps(row, indent=2, ensure_ascii=False, allow_nan=False)
    return "\n".join("    " + line for line in text.split("\n"))


def write_summary(
    prediction_outputs: Sequence[str | Path],
    csv_path: str,
    json_path: str,
    prompt_order: Sequence[str] | None = None,
    *,
    diversity: Mapping[str, Any] | None = None,
    real: RealCounts | None = None,
) -> dict[str, Any]:
    """Write the table as CSV and JSON; returns the JSON less its rows: ``metrics`` (see
    ``split_metrics``), ``diversity`` (the prompts' merged ``sdcnn-diversity/1`` document,
    with ``least_diverse``) and ``evaluation`` (``evaluation_metrics`` of the ``real``
    images' counts against the held-out ones; None without real images).

    Streamed: one prediction file in memory at a time, the rows written as they come,
    so time and memory stay linear with a small constant at a million rows.  The JSON is
    byte for byte what ``write_json_atomic`` writes of {"columns", "rows", "metrics",
    "diversity", "evaluation"}."""
    counter = SplitCounter()
    labels: list[str] | None = None
    columns: list[str] = list(FIXED_COLUMNS)
    with (
        atomic_path(csv_path) as csv_tmp,
        atomic_path(json_path) as json_tmp,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=Path(json_path).parent) as rows_tmp,
    ):
        with open(csv_tmp, "w", encoding="utf-8", newline="") as csv_file:
            writer = None
            n_rows = 0
            for document in iter_predictions(prediction_outputs, prompt_order):
                if writer is None:
                    labels = list(document["labels"])
                    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)]
                    writer = csv.DictWriter(csv_file, fieldnames=columns, lineterminator="\n")
                    writer.writeheader()
                for row in document_rows(document):
                    writer.writerow({key: _cell(value) for key, value in row.items()})
                    rows_tmp.write((",\n" if n_rows else "") + _json_row(row))
                    counter.add(row)
                    n_rows += 1
            if writer is None:
                csv.DictWriter(csv_file, fieldnames=columns, lineterminator="\n").writeheader()
        metrics = counter.metrics(labels or [])
        sections = {
            "metrics": metrics,
            "diversity": None if diversity is None else with_least_diverse(diversity),
            "evaluation": None if real is None else evaluation_metrics(real, metrics["holdout"]),
        }
        with open(json_tmp, "w", encoding="utf-8") as json_file:
            document = {"columns": columns, "rows": [], **sections}
            if not n_rows:
                json_file.write(dumps_json(document))
            else:
                head, tail = dumps_json_around(document, "rows")
                json_file.write(head)
                rows_tmp.seek(0)
                shutil.copyfileobj(rows_tmp, json_file, 1 << 20)
                json_file.write(tail)
    return sections


def with_least_diverse(diversity: Mapping[str, Any]) -> dict[str, Any]:
    """The merged diversity document with ``least_diverse``: the ids of the LEAST_DIVERSE
    prompts most worth a look for their diversity (``least_diverse``'s order), which the
    report's front page names."""
    shown = least_diverse(diversity["prompts"], LEAST_DIVERSE)
    return {**diversity, "least_diverse": [result["prompt_id"] for result in shown]}


def accuracy_line(metrics: dict[str, Any]) -> str | None:
    """ "held-out accuracy 0.958 (23 of 24 images right)", or None without labelled images."""
    held = metrics["holdout"]
    if not held["n_images"]:
        return None
    right = round(held["accuracy"] * held["n_images"])
    return f"held-out accuracy {held['accuracy']:.3f} ({right} of {held['n_images']} images right)"


def split_metrics(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """The classifier on the labelled images, per split ("holdout", "train"), from the
    predictions themselves: what the summary and the report's landing page say."""
    from sdcnn.classify.metrics import classification_metrics

    metrics = {}
    for split in SPLITS:
        chosen = [row for row in rows if row["split"] == split]
        metrics[split] = classification_metrics(
            [row["label"] for row in chosen], [row["top_label"] for row in chosen], labels
        )
    return metrics


def run_line(sections: Mapping[str, Any]) -> str | None:
    """The run's closing line from the summary JSON's sections: the scores on real images
    beside the held-out ones (``evaluation_line``), else the held-out accuracy; None
    without either."""
    from sdcnn.evaluate.scores import evaluation_line

    if sections.get("evaluation"):
        return evaluation_line(sections["evaluation"])
    return accuracy_line(sections["metrics"])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdcnn.reporting.summary [results/summary.json]``: print the run's
    closing line (``make run`` ends with it)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("summary", nargs="?", default="results/summary.json")
    path = Path(parser.parse_args(argv).summary)
    try:
        sections = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"no summary to report: {path}: {error}", file=sys.stderr)
        return 1
    line = run_line(sections)
    if line:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
