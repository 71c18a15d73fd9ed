"""The summary table and the manifest, on made-up prediction files (no workflow run).

Every probability is distinct, so a value under another label's column, another image's
row or another file's hash cannot pass.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.fileio import dumps_json
from sdcnn.reporting.manifest import (
    SCHEMA,
    backends_used,
    manifest_document,
    output_files,
    write_manifest,
)
from sdcnn.reporting.summary import FIXED_COLUMNS, read_all_predictions, summary_rows, write_summary
from sdcnn.workflow.step import StepError

LABELS = ["cat", "dog", "ship"]


def prediction(prompt_id: str, rows: list[list[float]], backend: str = "torch") -> dict[str, Any]:
    images = []
    for index, values in enumerate(rows):
        probabilities = dict(zip(LABELS, values, strict=True))
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
    return {"prompt_id": prompt_id, "backend": backend, "device": device, "labels": LABELS,
            "images": images}  # fmt: skip


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


# ---- summary


def test_rows_hold_each_images_values_under_its_labels() -> None:
    rows = summary_rows(DOCUMENTS)
    expected = [
        (document, image) for document in DOCUMENTS for image in document["images"]
    ]  # fmt: skip
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
    assert (tmp_path / "s.csv").read_text() == ",".join(FIXED_COLUMNS) + "\n"


def test_prediction_files_with_other_labels_are_refused(tmp_path: Path) -> None:
    other = prediction("other", [[0.2, 0.3, 0.5]])
    other["labels"] = ["cat", "dog", "truck"]
    paths = write_documents(tmp_path, [DOCUMENTS[0], other])
    with pytest.raises(StepError, match=r"disagree on the labels.*truck"):
        read_all_predictions(paths)
    assert [d["prompt_id"] for d in read_all_predictions(paths[:1])] == ["city"]


# ---- manifest


def make_outputs(root: Path) -> list[Path]:
    """A folder (with a subfolder and hidden files), a plain file, and a missing path."""
    folder = root / "results" / "images" / "city"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png a")
    (folder / "sub" / "b.png").write_bytes(b"png bb")
    (folder / ".snakemake_timestamp").write_bytes(b"")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "c.png").write_bytes(b"hidden")
    single = root / "results" / "summary.csv"
    single.write_bytes(b"prompt_id\n")
    return [folder, single, root / "results" / "missing.json"]


def test_output_files_expand_folders_and_skip_hidden_and_missing(tmp_path: Path) -> None:
    folder, single, missing = make_outputs(tmp_path)
    files = output_files([single, folder, missing, folder])
    assert files == sorted([folder / "a.png", folder / "sub" / "b.png", single]), files


def test_manifest_records_each_files_own_hash_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outputs = [Path(os.path.relpath(path, tmp_path)) for path in make_outputs(tmp_path)]
    predictions = write_documents(tmp_path, DOCUMENTS)
    document = manifest_document(outputs, predictions, "ab" * 32, snakemake_version="9.9.9")
    assert document["schema"] == SCHEMA and document["config_sha256"] == "ab" * 32
    assert document["backends"] == ["flux", "torch"]
    assert document["versions"]["snakemake"] == "9.9.9", document["versions"]
    assert document["versions"]["python"], "no Python version recorded"
    expected = [
        {
            "path": path,
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "size": len(Path(path).read_bytes()),
        }
        for path in (
            "results/images/city/a.png",
            "results/images/city/sub/b.png",
            "results/summary.csv",
        )  # fmt: skip
    ]
    assert document["files"] == expected, (
        f"manifest files {document['files']} are not the files' own hashes and sizes {expected}"
    )
    assert "julia" not in document["versions"]


def test_manifest_has_julia_versions_from_the_stamp(tmp_path: Path) -> None:
    stamp = tmp_path / "instantiated.txt"
    stamp.write_text("julia 1.11.2\n  [587475ba] Flux v0.16.5\n", encoding="utf-8")
    document = manifest_document([], [], "0" * 64, julia_stamp=stamp)
    assert document["versions"]["julia"] == "1.11.2"
    assert document["versions"]["Flux"] == "0.16.5"
    assert document["files"] == [] and document["backends"] == []


def test_backends_are_sorted_and_unique(tmp_path: Path) -> None:
    documents = [DOCUMENTS[1], DOCUMENTS[0], prediction("x", [[0.3, 0.3, 0.4]], backend="flux")]
    assert backends_used(write_documents(tmp_path, documents)) == ["flux", "torch"]


def test_write_manifest_writes_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_outputs(tmp_path)
    predictions = write_documents(tmp_path, DOCUMENTS[:1])
    outputs = ["results/summary.csv"]
    stamp = tmp_path / "instantiated.txt"
    stamp.write_text("julia 1.11.2\n", encoding="utf-8")
    write_manifest("results/manifest.json", outputs, [str(p) for p in predictions], "1" * 64,
                   julia_stamp=stamp, snakemake_version="9.9.9")  # fmt: skip
    written = json.loads(Path("results/manifest.json").read_text(encoding="utf-8"))
    assert written == manifest_document(outputs, predictions, "1" * 64, stamp, "9.9.9")
    assert (written["versions"]["julia"], written["versions"]["snakemake"]) == ("1.11.2", "9.9.9")
    assert Path("results/manifest.json").read_text(encoding="utf-8").endswith("}\n")


def test_streamed_manifest_is_the_documents_bytes_with_images_and_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_manifest streams its entries: the bytes must be the document's, in the
    document's file order (part by part: "a/x" before "a-b/x"), kernels included."""
    from PIL import Image, PngImagePlugin

    monkeypatch.chdir(tmp_path)
    for name, made_on in (("a/x.png", '{"cpu": 1}'), ("a-b/x.png", '{"cpu": 2}'),
                          ("a/y.png", '{"cpu": 1}'), ("a/z.png", None)):  # fmt: skip
        path = Path("results/images") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        if made_on is not None:
            info.add_text("made_on", made_on)
        Image.new("RGB", (2, 2)).save(path, pnginfo=info)
    Path("results/images/a/.hidden").write_text("x")
    outputs = ["results/images", "results/missing.csv"]
    write_manifest("results/manifest.json", outputs, [], "2" * 64)
    expected = dumps_json(manifest_document(outputs, [], "2" * 64))
    assert Path("results/manifest.json").read_text(encoding="utf-8") == expected
    document = json.loads(expected)
    assert [entry["path"] for entry in document["files"]] == [
        "results/images/a/x.png", "results/images/a/y.png", "results/images/a/z.png",
        "results/images/a-b/x.png",
    ]  # fmt: skip
    assert [kernel["images"] for kernel in document["kernels"]["images"]] == [2, 1]
    write_manifest("results/empty.json", [], [], "2" * 64)
    assert Path("results/empty.json").read_text(encoding="utf-8") == dumps_json(
        manifest_document([], [], "2" * 64)
    )


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
    metrics = write_summary([tmp_path], str(tmp_path / "s.csv"), str(tmp_path / "s.json"), order)
    by_id = {document["prompt_id"]: document for document in documents}
    rows = summary_rows([by_id[prompt_id] for prompt_id in order])
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in LABELS)]
    assert metrics == split_metrics(rows, LABELS)
    assert metrics["holdout"]["n_images"] == 1 and metrics["train"]["accuracy"] == 0.0
    table = {"columns": columns, "rows": rows, "metrics": metrics}
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == dumps_json(table)
    assert (tmp_path / "s.csv").read_text(encoding="utf-8") == csv_text(rows, columns)
