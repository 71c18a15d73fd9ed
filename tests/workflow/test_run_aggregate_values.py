"""The small run's aggregates hold the very numbers they were made from.

Shape checks pass when a summary puts a probability under another label's column, or a
manifest records one file's hash for all of them.  These tests compare values with an
independent source:

- every probability of ``summary.json`` and ``summary.csv`` with the prediction JSON's
  value for that label and image;
- every sha256 and size of ``manifest.json`` with the file itself (hashlib, os.stat),
  and the manifest's coverage with what the prediction files name;
- the report's pages (``summary.html``, ``run_info.html``), parsed as HTML, with
  ``summary.json`` and ``manifest.json`` at the precision they print.

Prediction files are found by a recursive glob under ``results/predictions`` and data
files through the manifest and the prediction files, so a change of layout (e.g. a shard
level) needs no change here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.pipeline

# written out here, not imported: the test holds the contract, the code must meet it
FIXED_COLUMNS = [
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
]
NOT_INSTALLED = "not installed"
Key = tuple[str, str]  # (prompt id, image id)


# ---- reading the run's outputs


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def prediction_files(workdir: Path) -> list[Path]:
    files = sorted((workdir / "results" / "predictions").rglob("*.json"))
    assert files, f"no prediction JSON under {workdir / 'results' / 'predictions'}"
    return files


def predictions(workdir: Path) -> dict[Key, dict[str, Any]]:
    """(prompt id, image id) -> that image's entry, with its document's labels, backend, device."""
    images: dict[Key, dict[str, Any]] = {}
    for path in prediction_files(workdir):
        document = read_json(path)
        for image in document["images"]:
            key = (document["prompt_id"], image["image_id"])
            assert key not in images, f"{key} is in two prediction files (the second: {path})"
            images[key] = {
                **image,
                "labels": document["labels"],
                "backend": document["backend"],
                "device": document["device"],
            }
    return images


def labels_of(workdir: Path) -> list[str]:
    label_lists = {tuple(entry["labels"]) for entry in predictions(workdir).values()}
    assert len(label_lists) == 1, f"the prediction files disagree on the labels: {label_lists}"
    return list(label_lists.pop())


def summary_table(workdir: Path) -> dict[str, Any]:
    return read_json(workdir / "results" / "summary.json")


def manifest(workdir: Path) -> dict[str, Any]:
    return read_json(workdir / "results" / "manifest.json")


# ---- the summary against the prediction files


def assert_row_matches_prediction(
    row: dict[str, Any], expected: dict[str, Any], labels: list[str], where: str
) -> None:
    for label in labels:
        value, truth = row[f"p_{label}"], expected["probabilities"][label]
        assert value == truth, (
            f"{where}: p_{label} is {value!r}, but the prediction file gives {label} {truth!r}"
            f" (its probabilities: {expected['probabilities']})"
        )
    for column in (
        "top_label",
        "top_probability",
        "backend",
        "device",
        "label",
        "split",
        "correct",
        "safety_flagged",
    ):
        assert row[column] == expected[column], (
            f"{where}: {column} is {row[column]!r}, the prediction file says {expected[column]!r}"
        )


def test_summary_json_holds_each_images_predicted_probabilities(small_run: Path) -> None:
    expected, labels = predictions(small_run), labels_of(small_run)
    table = summary_table(small_run)
    assert table["columns"] == [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)], (
        f"summary.json columns {table['columns']} are not the fixed ones then p_<label> "
        f"for the labels {labels}"
    )
    keys = [(row["prompt_id"], row["image_id"]) for row in table["rows"]]
    assert len(keys) == len(set(keys)), f"summary.json has an image twice: {keys}"
    assert set(keys) == set(expected), (
        f"summary.json rows {sorted(keys)} are not the predicted images {sorted(expected)}"
    )
    for row, key in zip(table["rows"], keys, strict=True):
        assert list(row) == table["columns"], f"summary.json row {key}: keys {list(row)}"
        assert_row_matches_prediction(row, expected[key], labels, f"summary.json row {key}")


def test_summary_metrics_count_the_prediction_files(small_run: Path) -> None:
    """The held-out accuracy the summary (and the report) states, counted here from the
    prediction files themselves."""
    images = predictions(small_run).values()
    held = [image for image in images if image["split"] == "holdout"]
    assert held, "the small run has no held-out image"
    right = sum(image["top_label"] == image["label"] for image in held)
    metrics = summary_table(small_run)["metrics"]["holdout"]
    assert metrics["n_images"] == len(held), f"summary counts {metrics['n_images']} held out"
    assert metrics["accuracy"] == right / len(held), (
        f"summary says held-out accuracy {metrics['accuracy']}, the predictions {right}/{len(held)}"
    )
    counts = metrics["confusion_matrix"]["counts"]
    labels = labels_of(small_run)
    for image in held:
        row, column = labels.index(image["label"]), labels.index(image["top_label"])
        assert counts[row][column] >= 1, f"{image['image_id']} is missing from the matrix"
    assert sum(map(sum, counts)) == len(held)


def csv_value(name: str, text: str) -> Any:
    """A CSV cell as the JSON has it: numbers, true/false, an empty cell for null."""
    if name.startswith("p_") or name == "top_probability":
        return float(text)
    if name in ("label", "split", "correct", "safety_flagged") and text == "":
        return None
    if name in ("correct", "safety_flagged"):
        return {"true": True, "false": False}[text]
    return text


def test_summary_csv_is_the_json_table_to_the_last_digit(small_run: Path) -> None:
    table = summary_table(small_run)
    expected, labels = predictions(small_run), labels_of(small_run)
    with open(small_run / "results" / "summary.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    assert header == table["columns"], f"summary.csv header {header} != {table['columns']}"
    assert len(rows) == len(table["rows"]), f"{len(rows)} CSV rows, {len(table['rows'])} in JSON"
    for text_row, json_row in zip(rows, table["rows"], strict=True):
        key = (text_row["prompt_id"], text_row["image_id"])
        assert key == (json_row["prompt_id"], json_row["image_id"]), (
            f"summary.csv row {key} stands where summary.json has "
            f"{(json_row['prompt_id'], json_row['image_id'])}"
        )
        parsed = {name: csv_value(name, text) for name, text in text_row.items()}
        assert_row_matches_prediction(parsed, expected[key], labels, f"summary.csv row {key}")


# ---- the manifest against the files


def test_manifest_hashes_and_sizes_are_the_files_own(small_run: Path) -> None:
    entries = manifest(small_run)["files"]
    assert entries, "the manifest lists no file"
    paths = [entry["path"] for entry in entries]
    assert len(paths) == len(set(paths)), "the manifest lists a file twice"
    wrong = []
    for entry in entries:
        path = small_run / entry["path"]
        assert path.is_file(), f"the manifest lists {entry['path']}, which is not a file"
        data = path.read_bytes()
        actual = {"sha256": hashlib.sha256(data).hexdigest(), "size": os.stat(path).st_size}
        assert actual["size"] == len(data)
        for what in ("sha256", "size"):
            if entry[what] != actual[what]:
                wrong.append(
                    f"{entry['path']}: {what} {entry[what]!r}, the file's {actual[what]!r}"
                )
    listing = "\n".join(wrong[:20])
    assert wrong == [], f"{len(wrong)} wrong values in {len(entries)} manifest entries:\n{listing}"


def test_manifest_covers_what_the_predictions_were_made_from(small_run: Path) -> None:
    """Every prediction file, tensor and weights file and both summaries, with the hashes the
    prediction files recorded for the tensors and weights."""
    listed = {entry["path"]: entry for entry in manifest(small_run)["files"]}
    expected: dict[str, str | None] = {}  # path -> the sha256 recorded elsewhere, if any
    for path in prediction_files(small_run):
        document = read_json(path)
        expected[path.relative_to(small_run).as_posix()] = None
        expected[Path(document["weights"]["path"]).as_posix()] = document["weights"]["sha256"]
        for image in document["images"]:
            expected[Path(image["tensor"]).as_posix()] = image["tensor_sha256"]
    expected |= {"results/summary.csv": None, "results/summary.json": None}
    missing = sorted(set(expected) - set(listed))
    assert missing == [], f"the manifest does not list {missing}"
    disagree = [
        f"{path}: manifest {listed[path]['sha256']}, prediction file {sha}"
        for path, sha in expected.items()
        if sha is not None and listed[path]["sha256"] != sha
    ]
    assert disagree == [], "manifest and prediction files disagree:\n" + "\n".join(disagree)
    kinds = {Path(path).parts[1] for path in listed}
    assert {"images", "tensors", "previews"} <= kinds, f"the manifest covers only {sorted(kinds)}"


# ---- the report's pages, parsed


@dataclass
class Cell:
    tag: str  # "td" or "th"
    attrs: dict[str, str]
    text: str = ""


@dataclass
class Tables(HTMLParser):
    """Every <table> of a page as rows of cells; and the text of every <code> element."""

    tables: list[list[list[Cell]]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._cell: Cell | None = None
        self._code: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = Cell(tag, {name: value or "" for name, value in attrs})
            self.tables[-1][-1].append(self._cell)
        elif tag == "code":
            self._code = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "code" and self._code is not None:
            self.codes.append("".join(self._code))
            self._code = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.text += data
        if self._code is not None:
            self._code.append(data)


def parse_page(path: Path) -> Tables:
    parser = Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def texts(row: list[Cell]) -> list[str]:
    return [cell.text.strip() for cell in row]


def test_summary_page_shows_the_summary_tables_numbers(small_run: Path) -> None:
    table = summary_table(small_run)
    labels = [column[2:] for column in table["columns"] if column.startswith("p_")]
    page = parse_page(small_run / "results" / "summary.html")
    assert len(page.tables) == 1, f"summary.html has {len(page.tables)} tables, expected 1"
    header, *body = page.tables[0]
    assert texts(header) == [
        "prompt",
        "image",
        "meant",
        "split",
        "top label",
        "p(top)",
        "right",
        *labels,
    ], texts(header)
    assert len(body) == len(table["rows"]), (
        f"summary.html shows {len(body)} rows, summary.json has {len(table['rows'])}"
    )
    shown_prompt = None
    for cells, row in zip(body, table["rows"], strict=True):
        shown = texts(cells)
        shown_prompt = shown[0] or shown_prompt  # the prompt is printed on its first row only
        where = f"summary.html row {row['image_id']}"
        expected = [
            row["prompt_id"],
            row["image_id"],
            row["label"] or "",
            row["split"] or "",
            row["top_label"],
            f"{row['top_probability']:.3f}",
            {True: "✓", False: "✗", None: ""}[row["correct"]],
            *(f"{row[f'p_{label}']:.3f}" for label in labels),
        ]
        assert [shown_prompt, *shown[1:]] == expected, (
            f"{where} shows {shown}, summary.json gives {expected} (probabilities to 3 places)"
        )
        framed = [
            label
            for label, cell in zip(labels, cells[7:], strict=True)
            if "top" in cell.attrs.get("class", "").split()
        ]
        assert framed == [row["top_label"]], (
            f"{where} frames {framed} as the top label, summary.json says {row['top_label']}"
        )


def first_difference(shown: list[list[str]], expected: list[list[str]]) -> str:
    for index, (got, want) in enumerate(zip(shown, expected, strict=False)):
        if got != want:
            return f"row {index}: shows {got}, expected {want}"
    return f"{len(shown)} rows shown, {len(expected)} expected"


def test_run_info_page_shows_the_manifests_files_hashes_and_versions(small_run: Path) -> None:
    recorded = manifest(small_run)
    page = parse_page(small_run / "results" / "run_info.html")
    headers = [texts(table[0]) for table in page.tables]
    assert headers == [["package", "version"]] * 2 + [["file", "bytes", "sha256"]], (
        f"run_info.html's tables have the headers {headers}: expected the manifest's versions, "
        "what drew the plots, and the files"
    )
    versions, _, files = ([texts(row) for row in table[1:]] for table in page.tables)
    expected_versions = [
        [name, version or NOT_INSTALLED] for name, version in recorded["versions"].items()
    ]
    assert versions == expected_versions, (
        "run_info.html's versions are not manifest.json's: "
        + first_difference(versions, expected_versions)
    )
    entries = recorded["files"]
    assert len(entries) <= 300, "the small run lists more files than the page shows"
    expected_files = [[entry["path"], f"{entry['size']:,}", entry["sha256"]] for entry in entries]
    assert files == expected_files, (
        "run_info.html's file table is not manifest.json's files (path, size, sha256): "
        + first_difference(files, expected_files)
    )
    text = " ".join("".join(page.text).split())
    total = sum(entry["size"] for entry in entries)
    summary = f"{len(entries):,} files, {total:,} bytes in all"
    assert summary in text, f"run_info.html does not say {summary!r}"
    assert recorded["config_sha256"] in page.codes, (
        f"run_info.html does not show the config hash {recorded['config_sha256']}"
    )
    backends = ", ".join(recorded["backends"]) or "none"
    assert f"Classifier backend: {backends}." in text, f"run_info.html does not name {backends}"
