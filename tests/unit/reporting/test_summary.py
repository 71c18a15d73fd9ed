"""The summary table (sdcnn/reporting/summary.py), on made-up prediction files (no workflow
run).

Every probability is distinct, so a value under another label's column or another image's
row cannot pass."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import dumps_json
from sdcnn.reporting.summary import FIXED_COLUMNS, read_all_predictions, summary_rows, write_summary
from tests.support.predictions import DOCUMENTS, LABELS, prediction, write_documents

# ---- summary


def test_rows_hold_each_images_values_under_its_labels() -> None:
    rows = summary_rows(DOCUMENTS)
    expected = [(document, image) for document in DOCUMENTS for image in document["images"]]
    assert len(rows) == len(expected), f"{len(rows)} rows for {len(expected)} images"
    for row, (document, image) in zip(rows, expected, strict=True):
        assert list(row) == [*FIXED_COLUMNS, *(f"p_{label}" for label in LABELS)], list(row)
        assert row == {
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
            **{f"p_{label}": image["probabilities"][label] for label in LABELS},
        }, f"row {row} is not image {image['image_id']} of {document['prompt_id']}"


def csv_cell(value: object) -> object:
    """How the CSV writes a JSON value: null as an empty cell, booleans as in the JSON."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else value


def test_summary_files_agree_with_the_documents_to_the_last_digit(tmp_path: Path) -> None:
    paths = write_documents(tmp_path, DOCUMENTS)
    write_summary(paths, str(tmp_path / "summary.csv"), str(tmp_path / "summary.json"))
    table = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in LABELS)]
    assert table["columns"] == columns and table["rows"] == summary_rows(DOCUMENTS)
    raw = (tmp_path / "summary.csv").read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw, "CSV lines must end with a bare newline"
    text = raw.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(columns), f"CSV header {text.splitlines()[0]!r}"
    for row, expected in zip(rows, table["rows"], strict=True):
        for column in columns:
            value = row[column]
            want = expected[column]
            got = float(value) if isinstance(want, float) else value
            want = csv_cell(want)
            assert got == want, f"CSV {expected['image_id']} {column}: {value!r}, JSON {want!r}"
    assert len(rows) == 3


def test_one_prediction_file_makes_a_summary(tmp_path: Path) -> None:
    paths = write_documents(tmp_path, DOCUMENTS[:1])
    write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    table = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert table["rows"] == summary_rows(DOCUMENTS[:1]) and len(table["rows"]) == 2


def test_no_predictions_give_the_fixed_columns_only(tmp_path: Path) -> None:
    write_summary([], str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    table = json.loads((tmp_path / "s.json").read_text())
    assert table["columns"] == list(FIXED_COLUMNS) and table["rows"] == []
    assert table["metrics"]["holdout"]["n_images"] == 0
    # bytes, not text: the header line too ends with a bare newline, not csv's "\r\n"
    assert (tmp_path / "s.csv").read_bytes() == (",".join(FIXED_COLUMNS) + "\n").encode()


def test_prediction_files_with_other_labels_are_refused(tmp_path: Path) -> None:
    other = prediction("other", [[0.2, 0.3, 0.5]])
    other["labels"] = ["cat", "dog", "truck"]
    paths = write_documents(tmp_path, [DOCUMENTS[0], other])
    with pytest.raises(StepError, match=r"disagree on the labels.*truck"):
        read_all_predictions(paths)
    assert [d["prompt_id"] for d in read_all_predictions(paths[:1])] == ["city"]


def test_streamed_summary_is_the_tables_bytes(tmp_path: Path) -> None:
    """write_summary streams its rows: the JSON must be what dumps_json makes of the whole
    table, and the CSV what csv_text makes of it, for labelled and unlabelled images."""
    from sdcnn.reporting.summary import csv_text, split_metrics

    documents = [prediction(f"p{k}", [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]) for k in range(3)]
    documents[1]["prompt_id"] = "ünï"
    for image, (label, split) in zip(
        documents[0]["images"], (("ship", "holdout"), ("dog", "train")), strict=True
    ):
        image.update(label=label, split=split, correct=label == image["top_label"])
    write_documents(tmp_path, documents)
    order = ["p2", "ünï", "p0"]
    metrics = write_summary([tmp_path], str(tmp_path / "s.csv"), str(tmp_path / "s.json"), order)[
        "metrics"
    ]
    by_id = {document["prompt_id"]: document for document in documents}
    rows = summary_rows([by_id[prompt_id] for prompt_id in order])
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in LABELS)]
    assert metrics == split_metrics(rows, LABELS)
    assert metrics["holdout"]["n_images"] == 1 and metrics["train"]["accuracy"] == 0.0
    table = {"columns": columns, "rows": rows, "metrics": metrics}
    table |= {"diversity": None, "evaluation": None}  # given neither
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == dumps_json(table)
    assert (tmp_path / "s.csv").read_text(encoding="utf-8") == csv_text(rows, columns)


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def labelled(document: dict[str, Any], labels: list[str | None], split: str | None) -> None:
    """Give ``document``'s images these true labels (None: unlabelled) in ``split``."""
    for image, label in zip(document["images"], labels, strict=True):
        if label is not None:
            right = label == image["top_label"]
            image.update(label=label, split=split, correct=right)


def test_missing_prompts_are_named_in_config_order_at_most_ten(tmp_path: Path) -> None:
    """A prompt of the config without its prediction file is an error for the user that
    names the missing prompts (the first ten: a long list would bury the message)."""
    paths = write_documents(tmp_path, DOCUMENTS)
    gone = [f"gone{k:02d}" for k in range(12)]
    with pytest.raises(StepError) as error:
        read_all_predictions(paths, ["city", *gone, "harbor"])
    assert str(error.value) == "no predictions for the prompt(s) " + ", ".join(gone[:10])


def test_predictions_are_read_in_the_configs_order(tmp_path: Path) -> None:
    paths = write_documents(tmp_path, DOCUMENTS)
    documents = read_all_predictions(paths, ["harbor", "city"])
    assert [document["prompt_id"] for document in documents] == ["harbor", "city"]


def test_correct_and_safety_flags_reach_the_row_and_the_csv_as_true_false(
    tmp_path: Path,
) -> None:
    """Each image's ``correct`` and ``safety_flagged`` are its own, and the CSV spells them
    ``true``/``false`` as the JSON does (not Python's True/False); unknown is an empty cell."""
    document = prediction("city", [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    labelled(document, ["cat", "cat", None], "holdout")
    for image, flagged in zip(document["images"], (False, True, None), strict=True):
        if flagged is not None:
            image["safety_flagged"] = flagged
    paths = write_documents(tmp_path, [document])
    write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    rows = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["rows"]
    flags = [(row["correct"], row["safety_flagged"]) for row in rows]
    assert flags == [(True, False), (False, True), (None, None)], flags
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as handle:
        header, *cells = csv.reader(handle)
    at = header.index("correct"), header.index("safety_flagged")
    assert [(row[at[0]], row[at[1]]) for row in cells] == [
        ("true", "false"),
        ("false", "true"),
        ("", ""),
    ]


def test_accuracy_line_counts_every_held_out_image(tmp_path: Path) -> None:
    """The line the summary step prints: 23 of 24 held-out images right (many of them the
    same label and top label, which must each count), as the docstring's example says."""
    from sdcnn.reporting.summary import accuracy_line

    held = prediction("held", [[0.6, 0.3, 0.1]] * 20 + [[0.1, 0.7, 0.2]] * 4)
    labelled(held, ["cat"] * 20 + ["dog"] * 3 + ["ship"], "holdout")
    taught = prediction("taught", [[0.6, 0.3, 0.1]] * 3)
    labelled(taught, ["cat"] * 3, "train")
    paths = write_documents(tmp_path, [held, taught])
    metrics = write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))["metrics"]
    assert (metrics["holdout"]["n_images"], metrics["train"]["n_images"]) == (24, 3)
    assert metrics["holdout"]["accuracy"] == 23 / 24 and metrics["train"]["accuracy"] == 1.0
    assert accuracy_line(metrics) == "held-out accuracy 0.958 (23 of 24 images right)"
    only_train = write_summary(paths[1:], str(tmp_path / "t.csv"), str(tmp_path / "t.json"))[
        "metrics"
    ]
    assert accuracy_line(only_train) is None, "no held-out image, yet an accuracy line"


def test_a_nan_probability_is_refused_and_no_summary_written(tmp_path: Path) -> None:
    """The summary JSON is strict JSON like every output (``dumps_json`` refuses NaN): a
    NaN probability fails the step, and neither file (nor a temporary) is left behind."""
    (tmp_path / "predictions").mkdir()
    bad = prediction("bad", [[0.2, 0.5, 0.3]])
    bad["images"][0]["probabilities"]["ship"] = float("nan")
    paths = write_documents(tmp_path / "predictions", [DOCUMENTS[0], bad])
    results = tmp_path / "results"
    with pytest.raises(ValueError, match="JSON"):
        write_summary(paths, str(results / "s.csv"), str(results / "s.json"))
    assert list(results.iterdir()) == [], list(results.iterdir())


def test_labels_of_any_text_keep_both_files_exact(tmp_path: Path) -> None:
    """A label is any non-blank text (config schema): commas and quotes are escaped in the
    CSV, and one spelt like the streamed JSON's row placeholder (it also appears in the
    metrics) still gives exactly the whole table's JSON."""
    from sdcnn.reporting.summary import split_metrics

    labels = ["@@sdcnn-rows@@", 'ship, "big"', "ünï"]
    documents = [
        prediction("p0", [[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]], labels=labels),
        prediction("p1", [[0.2, 0.7, 0.1]], labels=labels),
    ]
    labelled(documents[0], ["@@sdcnn-rows@@", 'ship, "big"'], "holdout")
    paths = write_documents(tmp_path, documents)
    metrics = write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))["metrics"]
    rows = summary_rows(documents)
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)]
    table = {"columns": columns, "rows": rows, "metrics": split_metrics(rows, labels)}
    table |= {"diversity": None, "evaluation": None}
    assert metrics == table["metrics"]
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == dumps_json(table)
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == columns
        read = list(reader)
    assert [[float(row[f"p_{label}"]) for label in labels] for row in read] == [
        [row[f"p_{label}"] for label in labels] for row in rows
    ]


def test_the_summary_holds_the_diversity_and_the_real_scores(tmp_path: Path) -> None:
    """The JSON's two sections: the merged diversity with its least diverse prompts named,
    and the real images' scores against the held-out ones; the closing line says both."""
    from sdcnn.evaluate.scores import RealCounts, evaluation_metrics
    from sdcnn.reporting.summary import LEAST_DIVERSE, accuracy_line, main, run_line

    held = prediction("held", [[0.6, 0.3, 0.1]])
    labelled(held, ["cat"], "holdout")
    paths = write_documents(tmp_path, [held])
    results = [
        {
            "prompt_id": f"q{i}",
            "n_images": 4,
            "mean_distance": 0.3 - i / 100,
            "flag": i == 3,
            "n_with_near_duplicate": 2 if i == 3 else 0,
        }
        for i in range(7)
    ]
    real = RealCounts.from_records(
        [{"label": "cat", "top_label": "cat"}, {"label": "dog", "top_label": "cat"}], LABELS
    )
    sections = write_summary(
        paths,
        str(tmp_path / "s.csv"),
        str(tmp_path / "s.json"),
        diversity={"schema": "sdcnn-diversity/1", "settings": {}, "prompts": results},
        real=real,
    )
    written = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert {key: written[key] for key in sections} == sections
    least = sections["diversity"]["least_diverse"]
    assert len(least) == LEAST_DIVERSE and least[:3] == ["q3", "q6", "q5"]
    assert sections["evaluation"] == evaluation_metrics(real, sections["metrics"]["holdout"])
    line = run_line(sections)
    assert line == (
        "held-out synthetic accuracy 1.000 (1 of 1), real accuracy 0.500 (1 of 2), gap +0.500"
    )
    assert run_line({**sections, "evaluation": None}) == accuracy_line(sections["metrics"])
    assert main([str(tmp_path / "s.json")]) == 0
    assert main([str(tmp_path / "missing.json")]) == 1


def test_the_closing_line_is_printed_from_the_runs_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m sdcnn.reporting.summary` (make run's last line): the line on stdout,
    results/summary.json by default; a missing summary said on stderr."""
    from sdcnn.reporting.summary import main, run_line

    held = prediction("held", [[0.6, 0.3, 0.1]])
    labelled(held, ["cat"], "holdout")
    (tmp_path / "results").mkdir()
    paths = write_documents(tmp_path, [held])
    json_path = tmp_path / "results" / "summary.json"
    sections = write_summary(paths, str(tmp_path / "s.csv"), str(json_path))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert capsys.readouterr().out == run_line(sections) + "\n"
    assert main(["nowhere.json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("no summary to report: nowhere.json: ")
