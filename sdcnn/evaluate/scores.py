"""Scores on real images: real accuracy, per-label precision and recall, the confusion
matrix, and the synthetic→real gap, as one JSON-able metrics document.

Per shard, then merged: a shard's predictions become ``RealCounts`` (how many images had
each (label, top label) pair; the top labels of images without a label), which add up
(``counts_a + counts_b``) and round-trip through JSON (``to_json``/``from_json``).  The
evaluation adds every shard's counts and calls ``evaluation_metrics``:

    counts = RealCounts.from_records(rows, labels)       # rows: {"label", "top_label", ...}
    metrics = evaluation_metrics(counts, summary_metrics["holdout"])
    print(evaluation_line(metrics))

A record is a row of the summary (``sdcnn.reporting.summary``) or an image of a prediction
file (``sdcnn.classify.prediction``): ``label`` (None: predict only) and ``top_label``.  The
scores are ``sdcnn.classify.metrics.classification_metrics``, as for the held-out images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sdcnn.classify.metrics import classification_metrics
from sdcnn.core.errors import StepError

SCHEMA = "sdcnn-evaluation/1"
COUNTS_SCHEMA = "sdcnn-evaluation-counts/1"


@dataclass
class RealCounts:
    """The real images' predictions as counts: ``pairs[(label, top_label)]`` for the
    labelled images, ``unlabelled[top_label]`` for the others."""

    labels: tuple[str, ...]
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    unlabelled: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], labels: Sequence[str]
    ) -> RealCounts:
        """Count ``records`` (each with ``label`` or None, and ``top_label``)."""
        counts = cls(tuple(labels))
        for record in records:
            counts.add(record)
        return counts

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any]]) -> RealCounts | None:
        """Count the images of prediction documents (``sdcnn-predictions/1``), which must
        name the same labels; None for no documents."""
        counts = None
        for document in documents:
            if counts is None:
                counts = cls(tuple(document["labels"]))
            elif tuple(document["labels"]) != counts.labels:
                raise StepError(
                    f"prediction files disagree on the labels: {list(counts.labels)} and "
                    f"{list(document['labels'])} ({document.get('prompt_id')})"
                )
            for image in document["images"]:
                counts.add(image)
        return counts

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one image; a label or top label outside ``labels`` is an error naming it."""
        label, top = record.get("label"), record["top_label"]
        for value, what in ((label, "label"), (top, "top label")):
            if value is not None and value not in self.labels:
                image = record.get("image_id", "an image")
                raise StepError(f"{image}: {what} {value!r} is not one of {list(self.labels)}")
        if label is None:
            self.unlabelled[top] += 1
        else:
            self.pairs[(label, top)] += 1

    def __add__(self, other: RealCounts) -> RealCounts:
        if other.labels != self.labels:
            raise StepError(f"counts of other labels: {list(self.labels)}, {list(other.labels)}")
        return RealCounts(self.labels, self.pairs + other.pairs, self.unlabelled + other.unlabelled)

    @property
    def n_labelled(self) -> int:
        return sum(self.pairs.values())

    @property
    def n_images(self) -> int:
        return self.n_labelled + sum(self.unlabelled.values())

    def to_json(self) -> dict[str, Any]:
        """A shard's counts as JSON: pairs as ``[label, top_label, n]`` in label order."""
        order = {label: position for position, label in enumerate(self.labels)}
        pairs = sorted(self.pairs.items(), key=lambda item: (order[item[0][0]], order[item[0][1]]))
        return {
            "schema": COUNTS_SCHEMA,
            "labels": list(self.labels),
            "n_images": self.n_images,
            "pairs": [[label, top, n] for (label, top), n in pairs if n],
            "unlabelled": {label: self.unlabelled[label] for label in self.labels},
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RealCounts:
        """The counts ``to_json`` wrote."""
        if document.get("schema") != COUNTS_SCHEMA:
            raise StepError(f"not a {COUNTS_SCHEMA} document: schema {document.get('schema')!r}")
        counts = cls(tuple(document["labels"]))
        for label, top, n in document["pairs"]:
            counts.pairs[(label, top)] += n
        counts.unlabelled.update({top: n for top, n in document["unlabelled"].items() if n})
        return counts


def right_count(metrics: Mapping[str, Any]) -> int:
    """How many images ``classification_metrics`` counted as right: its matrix's diagonal."""
    counts = metrics["confusion_matrix"]["counts"]
    return sum(row[position] for position, row in enumerate(counts))


def accuracy_gap(holdout: Mapping[str, Any] | None, real: Mapping[str, Any] | None) -> float | None:
    """Held-out synthetic accuracy minus real accuracy (``classification_metrics`` of each),
    from the counts, rounded once; None when either has no labelled image."""
    if not holdout or not real or not holdout["n_images"] or not real["n_images"]:
        return None
    exact = Fraction(right_count(holdout), holdout["n_images"]) - Fraction(
        right_count(real), real["n_images"]
    )
    return float(exact)


def evaluation_metrics(
    real: RealCounts, holdout: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The metrics document (``sdcnn-evaluation/1``) of the real images' ``real`` counts and,
    for the gap, the held-out synthetic images' ``classification_metrics`` (the summary's
    ``metrics["holdout"]``; None if unknown).

    ``real`` holds the real images' accuracy, per-label precision and recall and confusion
    matrix (over the labelled images: its ``n_images`` is ``n_labelled``); ``predicted``
    how many real images, labelled or not, were given each label."""
    truth = [label for (label, _), n in real.pairs.items() for _ in range(n)]
    given = [top for (_, top), n in real.pairs.items() for _ in range(n)]
    scores = classification_metrics(truth, given, real.labels)
    right = right_count(scores)
    predicted = Counter(real.unlabelled)
    for (_, top), n in real.pairs.items():
        predicted[top] += n
    held = None
    if holdout is not None and holdout["n_images"]:
        held = {
            "n_images": holdout["n_images"],
            "n_right": right_count(holdout),
            "accuracy": holdout["accuracy"],
        }
    return {
        "schema": SCHEMA,
        "labels": list(real.labels),
        "n_images": real.n_images,
        "n_labelled": real.n_labelled,
        "n_unlabelled": real.n_images - real.n_labelled,
        "counts": {
            "right": right,
            "wrong": real.n_labelled - right,
            "predicted": {label: predicted[label] for label in real.labels},
        },
        "real": scores,
        "holdout": held,
        "real_accuracy": scores["accuracy"],
        "holdout_accuracy": held["accuracy"] if held else None,
        "gap": accuracy_gap(holdout, scores),
    }


def evaluation_line(metrics: Mapping[str, Any]) -> str:
    """The run's last console line, e.g. "held-out synthetic accuracy 0.972 (35 of 36),
    real accuracy 0.800 (8 of 10), gap +0.172"; "n/a" for what is missing."""
    held = metrics["holdout"]
    if held:
        held_part = f"{held['accuracy']:.3f} ({held['n_right']} of {held['n_images']})"
    else:
        held_part = "n/a (no held-out images)"
    if metrics["n_labelled"]:
        real_part = f"{metrics['real_accuracy']:.3f} ({metrics['counts']['right']} of "
        real_part += f"{metrics['n_labelled']}"
        if metrics["n_unlabelled"]:
            real_part += f"; {metrics['n_unlabelled']} more without a label"
        real_part += ")"
    else:
        real_part = f"n/a ({metrics['n_images']} real images, none labelled)"
    gap = "n/a" if metrics["gap"] is None else f"{metrics['gap']:+.3f}"
    return f"held-out synthetic accuracy {held_part}, real accuracy {real_part}, gap {gap}"
