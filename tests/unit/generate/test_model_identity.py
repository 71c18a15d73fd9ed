"""What a model is, as the generate rule's params record it (sdcnn/generate/model_identity.py):
replacing a local checkpoint's files, or a new snapshot of a Hub model, changes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdcnn.generate.model_identity import (
    folder_state,
    hub_cache_dir,
    hub_cached_commit,
    parse_time_identity,
)


def model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}", encoding="utf-8")
    (folder / "unet" / "weights.safetensors").write_bytes(b"\0" * 64)
    return folder


def test_a_local_models_state_follows_its_files(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    before = folder_state(folder)
    assert folder_state(folder) == before, "not a function of the folder alone"
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x").write_text("ignored", encoding="utf-8")
    assert folder_state(folder) == before, "a hidden file changed it"
    weights = folder / "unet" / "weights.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"\1" * 64)  # the same size: replaced content, a new time
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    replaced = folder_state(folder)
    assert replaced != before, "replacing a weights file left the model's state as it was"
    (folder / "unet" / "config.json").write_text("{}", encoding="utf-8")
    assert folder_state(folder) != replaced, "a new file left the state as it was"


def test_the_hub_cache_is_found_as_huggingface_hub_finds_it(tmp_path: Path) -> None:
    home = Path("~").expanduser()
    assert hub_cache_dir({}) == home / ".cache" / "huggingface" / "hub"
    assert hub_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "huggingface" / "hub"
    assert hub_cache_dir({"HF_HOME": str(tmp_path), "XDG_CACHE_HOME": "/x"}) == tmp_path / "hub"
    assert hub_cache_dir({"HF_HUB_CACHE": str(tmp_path), "HF_HOME": "/x"}) == tmp_path


@pytest.mark.parametrize("commit", ["a" * 40, "b" * 40])
def test_a_hub_models_identity_is_its_cached_commit(tmp_path: Path, commit: str) -> None:
    assert hub_cached_commit("org/name", tmp_path) is None
    refs = tmp_path / "models--org--name" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit + "\n", encoding="utf-8")
    assert hub_cached_commit("org/name", tmp_path) == commit
    assert hub_cached_commit("org/other", tmp_path) is None


def test_the_cache_layout_is_huggingface_hubs(tmp_path: Path) -> None:
    """The layout read above is the one huggingface_hub itself resolves."""
    from huggingface_hub import constants

    assert constants.REPO_ID_SEPARATOR == "--"
    folder = tmp_path / "models--org--name"
    (folder / "refs").mkdir(parents=True)
    (folder / "snapshots" / ("c" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("c" * 40) / "model_index.json").write_text("{}")
    (folder / "refs" / "main").write_text("c" * 40)
    from huggingface_hub import snapshot_download

    path = snapshot_download("org/name", cache_dir=tmp_path, local_files_only=True)
    assert Path(path).name == hub_cached_commit("org/name", tmp_path)


def test_model_params_say_what_the_model_is(tmp_path: Path) -> None:
    demo = parse_time_identity("demo")
    assert demo["source"] == "demo" and len(demo["sha256"]) == 64
    (tmp_path / "model_index.json").write_text("{}")
    state = {"source": str(tmp_path), "files": folder_state(tmp_path)}
    assert parse_time_identity(str(tmp_path)) == state
    hub = parse_time_identity("someone/not-cached-model")
    assert hub["source"] == "someone/not-cached-model" and "commit" in hub
