"""Classification metrics (sdcnn/classify/metrics.py), against a hand count."""

from __future__ import annotations

import pytest

from sdcnn.classify.metrics import classification_metrics


def test_metrics_against_a_hand_count() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    given = ["a", "a", "b", "b", "a", "a"]
    metrics = classification_metrics(truth, given, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["confusion_matrix"]["counts"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert metrics["per_label"]["a"] == {"precision": 2 / 4, "recall": 2 / 3, "support": 3}
    assert metrics["per_label"]["b"] == {"precision": 1 / 2, "recall": 1 / 2, "support": 2}
    # c was never predicted: its precision is undefined, not 0
    assert metrics["per_label"]["c"] == {"precision": None, "recall": 0.0, "support": 1}
    assert classification_metrics([], [], ["a"])["accuracy"] is None
