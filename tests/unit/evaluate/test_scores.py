"""Real-image scores: exact accuracy, precision and recall, shards that add up, the gap."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from sdcnn.classify.metrics import classification_metrics
from sdcnn.core.errors import StepError
from sdcnn.evaluate.scores import (
    SCHEMA,
    RealCounts,
    accuracy_gap,
    evaluation_line,
    evaluation_metrics,
)

LABELS = ("circle", "square", "triangle")


def records(pairs: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    return [
        {"image_id": f"real_{index:03d}", "label": label, "top_label": top}
        for index, (label, top) in enumerate(pairs)
    ]


def wrong_on(n: int, k: int) -> list[tuple[str | None, str]]:
    """n images, labels in turn; the CNN gives the next label on exactly the first k."""
    pairs = []
    for index in range(n):
        label = LABELS[index % 3]
        top = LABELS[(index + 1) % 3] if index < k else label
        pairs.append((label, top))
    return pairs


@pytest.mark.parametrize(("n", "k"), [(10, 2), (7, 3), (49, 1), (3, 3), (1000, 7)])
def test_accuracy_is_exactly_n_minus_k_over_n(n: int, k: int) -> None:
    metrics = evaluation_metrics(RealCounts.from_records(records(wrong_on(n, k)), LABELS))
    assert metrics["real_accuracy"] == (n - k) / n
    assert Fraction(metrics["real_accuracy"]) == Fraction((n - k) / n)
    assert metrics["counts"]["right"] == n - k and metrics["counts"]["wrong"] == k
    assert metrics["n_images"] == metrics["n_labelled"] == n


def test_precision_recall_and_confusion_are_exact() -> None:
    # circles: 3 right, 1 called square; squares: 2 right; triangles: 1 right, 2 called circle
    pairs = [("circle", "circle")] * 3 + [("circle", "square")] + [("square", "square")] * 2
    pairs += [("triangle", "triangle")] + [("triangle", "circle")] * 2
    metrics = evaluation_metrics(RealCounts.from_records(records(pairs), LABELS))
    real = metrics["real"]
    assert real["confusion_matrix"]["counts"] == [[3, 1, 0], [0, 2, 0], [2, 0, 1]]
    assert real["per_label"]["circle"] == {"precision": 3 / 5, "recall": 3 / 4, "support": 4}
    assert real["per_label"]["square"] == {"precision": 2 / 3, "recall": 1.0, "support": 2}
    assert real["per_label"]["triangle"] == {"precision": 1.0, "recall": 1 / 3, "support": 3}
    assert metrics["real_accuracy"] == 6 / 9
    assert real == classification_metrics(*zip(*pairs, strict=True), LABELS)


def test_unlabelled_images_are_predicted_not_scored() -> None:
    pairs = wrong_on(4, 1) + [(None, "square"), (None, "square"), (None, "circle")]
    metrics = evaluation_metrics(RealCounts.from_records(records(pairs), LABELS))
    assert (metrics["n_images"], metrics["n_labelled"], metrics["n_unlabelled"]) == (7, 4, 3)
    assert metrics["real_accuracy"] == 3 / 4
    assert metrics["counts"]["predicted"] == {"circle": 2, "square": 4, "triangle": 1}


def test_a_predict_only_set_has_no_accuracy_and_no_gap() -> None:
    counts = RealCounts.from_records(records([(None, "circle")] * 5), LABELS)
    holdout = classification_metrics(["circle"], ["circle"], LABELS)
    metrics = evaluation_metrics(counts, holdout)
    assert metrics["real_accuracy"] is None and metrics["gap"] is None
    assert evaluation_line(metrics) == (
        "held-out synthetic accuracy 1.000 (1 of 1), real accuracy n/a "
        "(5 real images, none labelled), gap n/a"
    )


def test_gap_and_the_console_line() -> None:
    truth = ["circle"] * 36
    holdout = classification_metrics(truth, ["circle"] * 35 + ["square"], LABELS)
    counts = RealCounts.from_records(records(wrong_on(10, 2)), LABELS)
    metrics = evaluation_metrics(counts, holdout)
    assert metrics["gap"] == float(Fraction(35, 36) - Fraction(8, 10))
    assert metrics["holdout"] == {"n_images": 36, "n_right": 35, "accuracy": 35 / 36}
    assert evaluation_line(metrics) == (
        "held-out synthetic accuracy 0.972 (35 of 36), real accuracy 0.800 (8 of 10), gap +0.172"
    )
    more = RealCounts.from_records(records(wrong_on(10, 2) + [(None, "circle")]), LABELS)
    assert "real accuracy 0.800 (8 of 10; 1 more without a label)" in evaluation_line(
        evaluation_metrics(more, holdout)
    )


def test_no_holdout_means_no_gap() -> None:
    metrics = evaluation_metrics(RealCounts.from_records(records(wrong_on(5, 0)), LABELS))
    assert metrics["holdout"] is None and metrics["gap"] is None
    assert evaluation_line(metrics) == (
        "held-out synthetic accuracy n/a (no held-out images), real accuracy 1.000 (5 of 5), "
        "gap n/a"
    )
    empty = classification_metrics([], [], LABELS)
    assert evaluation_metrics(RealCounts(LABELS), empty)["gap"] is None
    assert accuracy_gap(None, empty) is None


def test_shards_add_up_and_round_trip_through_json() -> None:
    pairs = wrong_on(30, 4) + [(None, "triangle")] * 2
    rows = records(pairs)
    shards = [RealCounts.from_records(rows[start::3], LABELS) for start in range(3)]
    stored = [RealCounts.from_json(json.loads(json.dumps(shard.to_json()))) for shard in shards]
    merged = stored[0] + stored[1] + stored[2]
    whole = RealCounts.from_records(rows, LABELS)
    assert merged.to_json() == whole.to_json()
    assert evaluation_metrics(merged) == evaluation_metrics(whole)


def test_the_document_is_json_and_deterministic() -> None:
    rows = records(wrong_on(12, 5))
    holdout = classification_metrics(["square"] * 4, ["square"] * 4, LABELS)
    first = evaluation_metrics(RealCounts.from_records(rows, LABELS), holdout)
    again = evaluation_metrics(RealCounts.from_records(reversed(rows), LABELS), holdout)
    assert json.dumps(first, allow_nan=False) == json.dumps(again, allow_nan=False)
    assert first["schema"] == SCHEMA and first["labels"] == list(LABELS)


def test_prediction_documents_are_counted() -> None:
    document = {"labels": list(LABELS), "prompt_id": "real", "images": records(wrong_on(6, 1))}
    counts = RealCounts.from_documents([document, document])
    assert counts is not None and counts.n_images == 12 and counts.n_labelled == 12
    with pytest.raises(StepError, match="disagree on the labels"):
        RealCounts.from_documents([document, {**document, "labels": ["a", "b"]}])
    assert RealCounts.from_documents([]) is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"image_id": "cat.png", "label": "cat", "top_label": "circle"}, "cat.png: label 'cat'"),
        ({"image_id": "x.jpg", "label": None, "top_label": "oval"}, "x.jpg: top label 'oval'"),
    ],
)
def test_labels_outside_the_classifier_are_errors_naming_the_image(
    record: dict[str, Any], message: str
) -> None:
    with pytest.raises(StepError, match=message):
        RealCounts.from_records([record], LABELS)


def test_counts_of_other_labels_do_not_add() -> None:
    with pytest.raises(StepError, match="other labels"):
        RealCounts(LABELS) + RealCounts(("a", "b"))
    with pytest.raises(StepError, match="schema"):
        RealCounts.from_json({"schema": "something else"})


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def test_the_counts_document_names_its_pairs_in_label_order_and_sums_repeats() -> None:
    from sdcnn.evaluate.scores import COUNTS_SCHEMA

    counts = RealCounts(("b", "a"))  # the classifier's order, not the alphabet's
    for label, top in [("b", "a"), ("a", "b"), ("b", "b"), ("a", "a")]:
        counts.add({"label": label, "top_label": top})
    counts.add({"label": None, "top_label": "b"})
    document = counts.to_json()
    assert document["pairs"] == [["b", "b", 1], ["b", "a", 1], ["a", "b", 1], ["a", "a", 1]]
    assert document["n_images"] == 5 and document["schema"] == COUNTS_SCHEMA
    repeated = {**document, "pairs": [["a", "a", 2], ["a", "a", 3]]}
    assert RealCounts.from_json(repeated).pairs[("a", "a")] == 5
    with pytest.raises(StepError, match=r"schema 'other/1'$"):
        RealCounts.from_json({**document, "schema": "other/1"})


def test_errors_name_the_image_or_the_prediction_file() -> None:
    counts = RealCounts(("a", "b"))
    with pytest.raises(StepError, match=r"^an image: top label 'c' is not one of"):
        counts.add({"label": "a", "top_label": "c"})
    documents = [{"labels": ["a", "b"], "images": []}, {"labels": ["a", "c"], "images": []}]
    documents[1]["prompt_id"] = "p9"
    with pytest.raises(StepError, match=r"\['a', 'c'\] \(p9\)$"):
        RealCounts.from_documents(documents)


def test_the_gap_needs_held_out_images() -> None:
    from sdcnn.evaluate.scores import accuracy_gap

    real = evaluation_metrics(RealCounts.from_records([{"label": "a", "top_label": "a"}], ["a"]))
    empty = {"n_images": 0, "accuracy": None}
    assert accuracy_gap(empty, real["real"]) is None
    assert accuracy_gap(real["real"], {**real["real"], "n_images": 0}) is None
    assert real["holdout_accuracy"] is None
    held = {**real["real"]}
    assert evaluation_metrics(RealCounts.from_records([], ["a"]), held)["holdout_accuracy"] == 1.0
