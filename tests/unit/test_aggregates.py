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

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import dumps_json
from sdcnn.reporting.manifest import (
    SCHEMA,
    backends_used,
    manifest_document,
    output_files,
    write_manifest,
)
from sdcnn.reporting.summary import FIXED_COLUMNS, read_all_predictions, summary_rows, write_summary

LABELS = ["cat", "dog", "ship"]


def prediction(
    prompt_id: str, rows: list[list[float]], backend: str = "torch", labels: list[str] | None = None
) -> dict[str, Any]:
    labels = LABELS if labels is None else labels
    images = []
    for index, values in enumerate(rows):
        probabilities = dict(zip(labels, values, strict=True))
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
    return {"prompt_id": prompt_id, "backend": backend, "device": device, "labels": labels,
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
    # bytes, not text: the header line too ends with a bare newline, not csv's "\r\n"
    assert (tmp_path / "s.csv").read_bytes() == (",".join(FIXED_COLUMNS) + "\n").encode()


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
        ("true", "false"), ("false", "true"), ("", ""),
    ]  # fmt: skip


def test_accuracy_line_counts_every_held_out_image(tmp_path: Path) -> None:
    """The line the summary step prints: 23 of 24 held-out images right (many of them the
    same label and top label, which must each count), as the docstring's example says."""
    from sdcnn.reporting.summary import accuracy_line

    held = prediction("held", [[0.6, 0.3, 0.1]] * 20 + [[0.1, 0.7, 0.2]] * 4)
    labelled(held, ["cat"] * 20 + ["dog"] * 3 + ["ship"], "holdout")
    taught = prediction("taught", [[0.6, 0.3, 0.1]] * 3)
    labelled(taught, ["cat"] * 3, "train")
    paths = write_documents(tmp_path, [held, taught])
    metrics = write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    assert (metrics["holdout"]["n_images"], metrics["train"]["n_images"]) == (24, 3)
    assert metrics["holdout"]["accuracy"] == 23 / 24 and metrics["train"]["accuracy"] == 1.0
    assert accuracy_line(metrics) == "held-out accuracy 0.958 (23 of 24 images right)"
    only_train = write_summary(paths[1:], str(tmp_path / "t.csv"), str(tmp_path / "t.json"))
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
    metrics = write_summary(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    rows = summary_rows(documents)
    columns = [*FIXED_COLUMNS, *(f"p_{label}" for label in labels)]
    table = {"columns": columns, "rows": rows, "metrics": split_metrics(rows, labels)}
    assert metrics == table["metrics"]
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == dumps_json(table)
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == columns
        read = list(reader)
    assert [[float(row[f"p_{label}"]) for label in labels] for row in read] == [
        [row[f"p_{label}"] for label in labels] for row in rows
    ]


def test_streamed_scratch_files_lie_beside_the_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary's rows and the manifest's entries are streamed through a scratch file in
    the output's own folder (where the output itself fits), not the system's temp folder,
    which may be small or missing on a compute node."""
    import tempfile

    paths = write_documents(tmp_path, DOCUMENTS)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-folder"))
    results = tmp_path / "results"
    write_summary(paths, str(results / "s.csv"), str(results / "s.json"))
    table = json.loads((results / "s.json").read_text(encoding="utf-8"))
    assert table["rows"] == summary_rows(DOCUMENTS)
    write_manifest(str(results / "manifest.json"), paths, [str(p) for p in paths], "3" * 64)
    assert (results / "manifest.json").read_text(encoding="utf-8") == dumps_json(
        manifest_document(paths, paths, "3" * 64)
    )


def save_png(path: Path, made_on: str | None, image_format: str = "PNG") -> None:
    """A 2x2 image at ``path``, with ``made_on`` as its kernel environment text chunk."""
    from PIL import Image, PngImagePlugin

    from sdcnn.core.png_text import MADE_ON as MADE_ON_TEXT_KEY

    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    if made_on is not None:
        info.add_text(MADE_ON_TEXT_KEY, made_on)
    Image.new("RGB", (2, 2)).save(path, format=image_format, pnginfo=info)


def test_kernels_count_the_generated_images_and_give_the_trainings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kernels``: each distinct environment of the generated images (PNGs under
    ``images/``) with its image count and its recorded text as JSON, and the training's
    environment from its metrics (None without training). A figure PNG elsewhere does not
    count; a non-PNG file named ``.png`` is listed but has no environment."""
    monkeypatch.chdir(tmp_path)
    amd, intel = {"cpu": {"model": "AMD EPYC"}}, {"cpu": {"model": "Intel Xeon"}}
    save_png(Path("results/images/a/x.png"), json.dumps(amd))
    save_png(Path("results/images/a/y.png"), json.dumps(amd))
    save_png(Path("results/images/b/x.png"), json.dumps(intel))
    save_png(Path("results/images/b/z.png"), None)
    save_png(Path("results/images/b/gif.png"), None, image_format="GIF")
    save_png(Path("results/figures/chart.png"), json.dumps({"cpu": {"model": "laptop"}}))
    trained_on = {"cpu": {"model": "Ampere Altra"}, "knobs": {"OMP_NUM_THREADS": "1"}}
    metrics = Path("results/training/metrics.json")
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"kernels": trained_on, "n_train": 3}), encoding="utf-8")
    outputs = ["results/images", "results/figures", str(metrics)]
    images = [{"images": 2, "made_on": amd}, {"images": 1, "made_on": intel}]
    document = manifest_document(outputs, [], "4" * 64, training_metrics=metrics)
    assert document["kernels"] == {"images": images, "training": trained_on}
    assert [entry["path"] for entry in document["files"]] == [
        "results/figures/chart.png", "results/images/a/x.png", "results/images/a/y.png",
        "results/images/b/gif.png", "results/images/b/x.png", "results/images/b/z.png",
        "results/training/metrics.json",
    ]  # fmt: skip
    write_manifest("results/manifest.json", outputs, [], "4" * 64, training_metrics=metrics)
    assert Path("results/manifest.json").read_text(encoding="utf-8") == dumps_json(document)
    untrained = manifest_document(outputs, [], "4" * 64)["kernels"]
    assert untrained == {"images": images, "training": None}, untrained
    write_manifest("results/untrained.json", outputs, [], "4" * 64)
    written = json.loads(Path("results/untrained.json").read_text(encoding="utf-8"))
    assert written["kernels"]["training"] is None


@pytest.mark.parametrize("spelt_like_it", ["@@sdcnn-files@@", "@@sdcnn-files-0@@"])
def test_a_recorded_text_spelt_like_the_streaming_placeholder_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelt_like_it: str
) -> None:
    """The streamed manifest is cut where its files go (sdcnn.core.fileio.dumps_json_around):
    an image whose recorded environment holds that cut's placeholder text, as a key and as
    a value, before the files in the document, still gives the whole document's bytes."""
    monkeypatch.chdir(tmp_path)
    save_png(Path("results/images/a/x.png"), json.dumps({spelt_like_it: [spelt_like_it]}))
    save_png(Path("results/images/a/y.png"), None)
    document = manifest_document(["results/images"], [], "4" * 64)
    write_manifest("results/manifest.json", ["results/images"], [], "4" * 64)
    text = Path("results/manifest.json").read_text(encoding="utf-8")
    assert text == dumps_json(document)
    assert [entry["path"] for entry in json.loads(text)["files"]] == [
        "results/images/a/x.png", "results/images/a/y.png",
    ]  # fmt: skip


def test_outputs_merge_part_by_part_and_names_stay_unescaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of separate outputs are merged in path order part by part ("a/x" before
    "a-b/x", though "-" sorts before "/"), and a non-ASCII name is written as UTF-8 text,
    as in every output's JSON: the streamed bytes are the document's."""
    monkeypatch.chdir(tmp_path)
    for name in ("results/shards/a-b/x.npy", "results/shards/a/x.npy", "results/données/é.csv"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(name.encode())
    outputs = ["results/shards/a-b", "results/données", "results/shards/a"]
    assert output_files(outputs) == [
        Path("results/données/é.csv"), Path("results/shards/a/x.npy"),
        Path("results/shards/a-b/x.npy"),
    ]  # fmt: skip
    write_manifest("results/manifest.json", outputs, [], "5" * 64)
    text = Path("results/manifest.json").read_text(encoding="utf-8")
    assert text == dumps_json(manifest_document(outputs, [], "5" * 64))
    assert '"path": "results/données/é.csv"' in text


def test_links_to_folders_are_not_followed(tmp_path: Path) -> None:
    """A link to a folder inside an output is not walked: a link back up the tree would
    list the same files again and again, one to elsewhere files that are no output."""
    folder = tmp_path / "results" / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "y.png").write_bytes(b"y")
    (folder / "a" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "b").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert output_files([folder]) == [folder / "a" / "x.png"]
