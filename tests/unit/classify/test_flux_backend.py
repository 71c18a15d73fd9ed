"""The Flux backend's files and versions (sdcnn/classify/flux_backend.py)."""

from __future__ import annotations

import os
from importlib import metadata

import pytest

from sdcnn.classify.flux_backend import project_files
from tests.support.workspace import REPO


def test_the_flux_backends_files_are_relative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    files = project_files(REPO / "julia")
    assert files[:2] == ["julia/Project.toml", "julia/predict.jl"]
    assert "julia/src/SDCNN.jl" in files and all(not os.path.isabs(f) for f in files)


def test_julia_versions_come_from_the_instantiate_stamp(tmp_path) -> None:  # noqa: ANN001
    from sdcnn.classify.flux_backend import versions_from_stamp
    from sdcnn.reporting.manifest import manifest_document

    stamp = tmp_path / "instantiated.txt"
    stamp.write_text(
        "julia 1.10.4\n"
        "Status `/home/me/sdcnn/julia/Manifest.toml`\n"
        "  [052768ef] CUDA v5.8.2\n"
        "  [587475ba] Flux v0.16.5\n"
        "  [872c559c] NNlib v0.9.36\n"
        "  [a93c6f00] DataFrames v1.7.0\n"
    )
    assert versions_from_stamp(stamp.read_text()) == {
        "julia": "1.10.4",
        "CUDA": "5.8.2",
        "Flux": "0.16.5",
        "NNlib": "0.9.36",
    }
    prediction = tmp_path / "p.json"
    prediction.write_text('{"backend": "flux"}')
    document = manifest_document([], [prediction], "hash", stamp, snakemake_version="9.0.0")
    assert document["backends"] == ["flux"]
    assert document["versions"]["Flux"] == "0.16.5" and document["versions"]["julia"] == "1.10.4"
    assert document["versions"]["snakemake"] == "9.0.0"
    assert document["versions"]["torch"] == metadata.version("torch")
