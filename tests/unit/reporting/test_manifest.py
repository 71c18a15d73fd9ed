"""The manifest (sdcnn/reporting/manifest.py), on made-up files (no workflow run).

Every file is distinct, so another file's hash or size cannot pass."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sdcnn.core.fileio import dumps_json
from sdcnn.reporting.manifest import (
    SCHEMA,
    backends_used,
    manifest_document,
    output_files,
    write_manifest,
)
from sdcnn.reporting.summary import summary_rows, write_summary
from tests.support.predictions import DOCUMENTS, prediction, write_documents

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
        )
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
    write_manifest(
        "results/manifest.json",
        outputs,
        [str(p) for p in predictions],
        "1" * 64,
        julia_stamp=stamp,
        snakemake_version="9.9.9",
    )
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
    for name, made_on in (
        ("a/x.png", '{"cpu": 1}'),
        ("a-b/x.png", '{"cpu": 2}'),
        ("a/y.png", '{"cpu": 1}'),
        ("a/z.png", None),
    ):
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
        "results/images/a/x.png",
        "results/images/a/y.png",
        "results/images/a/z.png",
        "results/images/a-b/x.png",
    ]
    assert [kernel["images"] for kernel in document["kernels"]["images"]] == [2, 1]
    write_manifest("results/empty.json", [], [], "2" * 64)
    assert Path("results/empty.json").read_text(encoding="utf-8") == dumps_json(
        manifest_document([], [], "2" * 64)
    )


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
        "results/figures/chart.png",
        "results/images/a/x.png",
        "results/images/a/y.png",
        "results/images/b/gif.png",
        "results/images/b/x.png",
        "results/images/b/z.png",
        "results/training/metrics.json",
    ]
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
        "results/images/a/x.png",
        "results/images/a/y.png",
    ]


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
        Path("results/données/é.csv"),
        Path("results/shards/a/x.npy"),
        Path("results/shards/a-b/x.npy"),
    ]
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
