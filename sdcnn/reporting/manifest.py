"""``results/manifest.json``: every output with its sha256 and size, and what made them.

It holds no timestamp and no absolute path, so two runs of one config on one
software stack give byte-identical manifests.  ``kernels`` lists the kernel environments
(``sdcnn.core.kernels.kernel_environment``) the images and the trained weights were made
with, as their PNGs and training metrics record them: a run spread over mixed nodes says
so here.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sdcnn.core.fileio import atomic_path, dumps_json, dumps_json_around, sha256_file
from sdcnn.core.png_text import MADE_ON, read_png_text
from sdcnn.core.provenance import package_versions

SCHEMA = "sdcnn-manifest/1"


def _walk_sorted(folder: str) -> Iterator[str]:
    """The files under ``folder`` in path order (part by part), hidden ones (and those in
    hidden folders) skipped: each folder's entries sorted by name, a subfolder's files
    where its name sorts, so no list of every file is ever held or sorted."""
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_sorted(entry.path)
        elif entry.is_file():
            yield entry.path


def iter_output_files(outputs: Iterable[str | Path]) -> Iterator[Path]:
    """The files behind ``outputs`` (folders expanded; Snakemake's hidden markers skipped),
    once each, sorted as paths (part by part), one at a time: the folders are walked in
    order and merged, in memory that does not grow with the number of files."""
    streams = []
    for output in map(Path, outputs):
        if output.is_dir():
            streams.append(_walk_sorted(os.fspath(output)))
        elif output.is_file():
            streams.append(iter([os.fspath(output)]))
    previous = None
    for name in heapq.merge(*streams, key=lambda name: Path(name).parts):
        path = Path(name)
        if path != previous:
            yield path
        previous = path


def output_files(outputs: Iterable[str | Path]) -> list[Path]:
    """Every file of ``iter_output_files``, as a list."""
    return list(iter_output_files(outputs))


def backends_used(prediction_outputs: Sequence[str | Path]) -> list[str]:
    from sdcnn.reporting.summary import prediction_files

    return sorted(
        {
            json.loads(path.read_text(encoding="utf-8"))["backend"]
            for path in prediction_files(prediction_outputs)
        }
    )


def _png_made_on(path: Path) -> str | None:
    """The kernel environment a PNG records (its ``made_on`` text chunk, JSON), if any:
    None for a PNG without it, or a file that is not a PNG."""
    try:
        return read_png_text(path).get(MADE_ON)
    except (OSError, ValueError):
        return None


def is_image(path: Path) -> bool:
    return path.suffix == ".png" and "images" in path.parts


def kernels_of(counts: dict[str, int], training_metrics: Path | str | None) -> dict[str, Any]:
    """``kernels``: the distinct kernel environments of the images, each with its image
    count (``counts``: made_on text -> images), and the training's, from its metrics."""
    images = [{"images": n, "made_on": json.loads(text)} for text, n in sorted(counts.items())]
    training = None
    if training_metrics is not None:
        training = json.loads(Path(training_metrics).read_text(encoding="utf-8")).get("kernels")
    return {"images": images, "training": training}


def kernels_used(files: Sequence[Path], training_metrics: Path | None = None) -> dict[str, Any]:
    """The distinct kernel environments of the images (each with its image count), from
    their PNGs, and the training's, from its metrics (``training_metrics``)."""
    counts: dict[str, int] = {}
    for path in files:
        if is_image(path):
            made_on = _png_made_on(path)
            if made_on is not None:
                counts[made_on] = counts.get(made_on, 0) + 1
    return kernels_of(counts, training_metrics)


def file_entry(path: Path) -> dict[str, Any]:
    return {"path": path.as_posix(), "sha256": sha256_file(path), "size": path.stat().st_size}


def manifest_document(
    outputs: Iterable[str | Path],
    prediction_paths: Sequence[str | Path],
    config_sha256: str,
    julia_stamp: str | Path | None = None,
    snakemake_version: str | None = None,
    training_metrics: str | Path | None = None,
) -> dict[str, Any]:
    """``julia_stamp``: the Julia environment's stamp, when the flux backend ran;
    ``snakemake_version``: the Snakemake that ran the workflow (the job's environment
    may not hold Snakemake at all, e.g. with --sdm conda); ``training_metrics``: the
    training's metrics, when the weights were trained (they record its kernels)."""
    versions: dict[str, str | None] = package_versions()
    if snakemake_version is not None:
        versions["snakemake"] = snakemake_version
    if julia_stamp is not None:
        from sdcnn.classify.flux_backend import versions_from_stamp

        versions.update(versions_from_stamp(Path(julia_stamp).read_text(encoding="utf-8")))
    files = output_files(outputs)
    return {
        "schema": SCHEMA,
        "config_sha256": config_sha256,
        "backends": backends_used(prediction_paths),
        "versions": versions,
        "kernels": kernels_used(files, training_metrics),
        "files": [file_entry(path) for path in files],
    }


def write_manifest(
    path: str,
    outputs: Iterable[str | Path],
    prediction_paths: Sequence[str],
    config_sha256: str,
    julia_stamp: str | Path | None = None,
    snakemake_version: str | None = None,
    training_metrics: str | Path | None = None,
) -> None:
    """``manifest_document`` written, byte for byte, in one pass over the files with one
    file's entry in memory at a time (the entries go to a scratch file, then after the
    header, which needs the images' kernels): linear with a small constant at millions
    of files."""
    header = manifest_document(
        [], prediction_paths, config_sha256, julia_stamp, snakemake_version, training_metrics
    )  # everything but the files and the images' kernels
    counts: dict[str, int] = {}
    n_files = 0
    final = Path(path)
    with (
        atomic_path(final) as tmp,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=final.parent) as entries,
    ):
        for file in iter_output_files(outputs):
            if is_image(file):
                made_on = _png_made_on(file)
                if made_on is not None:
                    counts[made_on] = counts.get(made_on, 0) + 1
            text = json.dumps(file_entry(file), indent=2, ensure_ascii=False)
            entries.write((",\n" if n_files else "") + _indented(text, 4))
            n_files += 1
        header["kernels"] = kernels_of(counts, training_metrics)
        with open(tmp, "w", encoding="utf-8") as handle:
            if not n_files:
                handle.write(dumps_json(header))
            else:
                head, tail = dumps_json_around({**header, "files": []}, "files")
                handle.write(head)
                entries.seek(0)
                shutil.copyfileobj(entries, handle, 1 << 20)
                handle.write(tail)


def _indented(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.split("\n"))
