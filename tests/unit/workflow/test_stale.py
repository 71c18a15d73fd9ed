"""What earlier runs left under results/ is found from the manifest, and removed on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdcnn.workflow.stale import main, stale_paths

CURRENT = [
    "results/images/1-of-2/p/p_000.png",
    "results/tensors/1-of-2/p/p_000.npy",
    "results/predictions/1-of-2/p.json",
    "results/weights/trained.safetensors",
]
STALE = [
    "results/images/1-of-1/p/p_000.png",  # the shard folders of `shards: 1`
    "results/images/1-of-2/gone/gone_000.png",  # a removed prompt's images
    "results/images/.1-of-2.x1y2.tmp/p/p_000.png",  # a killed job's temporary
    "results/predictions/1-of-2/gone.json",
]
KEPT = [
    "results/logs/generate/1-of-2.log",
    "results/summary.html",
    "results/images/1-of-2/p/.snakemake_timestamp",
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name in CURRENT + STALE + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    files = [{"path": name, "sha256": "0" * 64, "size": 1} for name in CURRENT]
    manifest = {"schema": "sdcnn-manifest/1", "files": files}
    (tmp_path / "results" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


def test_stale_paths_are_what_the_manifest_does_not_list(workdir: Path) -> None:
    found = [str(path.relative_to(workdir)) for path in stale_paths(workdir / "results")]
    assert found == [
        "results/images/.1-of-2.x1y2.tmp",
        "results/images/1-of-1",
        "results/images/1-of-2/gone",
        "results/predictions/1-of-2/gone.json",
    ]


def test_delete_removes_them_and_nothing_else(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(workdir / "results")]) == 0
    assert "4 stale path(s); --delete removes them" in capsys.readouterr().err
    assert all((workdir / name).exists() for name in STALE), "listing removed something"
    assert main([str(workdir / "results"), "--delete"]) == 0
    assert not any((workdir / name).exists() for name in STALE)
    assert all((workdir / name).exists() for name in CURRENT + KEPT)
    assert stale_paths(workdir / "results") == []


def test_nothing_is_removed_while_a_run_holds_the_lock(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / ".snakemake" / "locks").mkdir(parents=True)
    (workdir / ".snakemake" / "locks" / "0.output.lock").write_text("results/x")
    assert main([str(workdir / "results"), "--delete"]) == 1
    assert "holds this folder's lock: nothing removed" in capsys.readouterr().err
    assert all((workdir / name).exists() for name in STALE)


def test_no_manifest_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "results")])
    assert "no manifest (finish a run first" in capsys.readouterr().err
