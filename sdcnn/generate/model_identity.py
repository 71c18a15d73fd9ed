"""What a model *is*, two ways: ``parse_time_identity`` for the generate rule's params and
``content_identity`` for the image store's keys.

``parse_time_identity(source)`` changes when the model does, not only when its name does,
and is cheap enough for parse time (which runs again in every cluster job and dry run:
nothing is written, no checkpoint is read):

- the demo model: the sha256 of its files' content (5 MB, shipped with the package);
- a local folder: a digest of every file's relative path, size and modification time,
  so replacing or editing a checkpoint file re-runs generation (a copy with new times
  re-runs it too: the image store then hands back every image, keyed by content);
- a Hub id: the commit of its snapshot in the local Hugging Face cache (``refs/main``),
  read from the cache's files without importing huggingface_hub; None when not cached.

``content_identity(model, hash_cache)`` hashes a folder's content (the demo's, a local
one's) or names a Hub repository at its cached commit: what an image was made with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdcnn.generate.model_source import ModelSource, model_folder


def folder_state(folder: str | Path) -> str:
    """sha256 over (relative path, size, mtime in ns) of the folder's files, hidden ones
    (such as ``.cache``) left out; it reads no file's content."""
    from sdcnn.core.fileio import sha256_bytes
    from sdcnn.core.provenance import canonical_json
    from sdcnn.generate.image_store import visible_files

    entries = [
        [relative, stat.st_size, stat.st_mtime_ns]
        for relative, path in visible_files(Path(folder))
        for stat in [path.stat()]
    ]
    return sha256_bytes(canonical_json(entries).encode("utf-8"))


def hub_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The Hugging Face hub cache, found as huggingface_hub finds it: ``HF_HUB_CACHE``,
    else ``HF_HOME``/hub, else ``XDG_CACHE_HOME``/huggingface/hub, else ~/.cache/…"""
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    cache = environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache).expanduser() / "huggingface" / "hub"


def hub_cached_commit(repo_id: str, cache: str | Path, revision: str = "main") -> str | None:
    """The commit of ``repo_id``'s cached ``revision`` (its ``refs/<revision>`` file), or
    None when the model is not in the cache."""
    ref = Path(cache) / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        commit = ref.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit or None


def parse_time_identity(source: str) -> dict[str, Any]:
    """The generate rule's ``model`` param: the model's name and what it is (see the
    module docstring).  ``model.allow_download`` is left out: it decides whether a model
    may be fetched, never what it draws."""
    from sdcnn.generate.image_store import folder_fingerprint
    from sdcnn.generate.model_source import DEMO, DEMO_PIPELINE_DIR, looks_like_path

    if source == DEMO:  # what the shipped model is: its files' content (5 MB)
        return {"source": DEMO, "sha256": folder_fingerprint(DEMO_PIPELINE_DIR)}
    if looks_like_path(source):
        return {"source": source, "files": folder_state(Path(source).expanduser())}
    return {"source": source, "commit": hub_cached_commit(source, hub_cache_dir())}


def model_class_name(source: str) -> str | None:
    """The pipeline class a model's ``model_index.json`` names (which family it is), read
    without importing diffusers: from the demo folder, a local folder, or a Hub id's cached
    snapshot; None where there is none to read yet."""
    from sdcnn.generate.families import read_layout
    from sdcnn.generate.model_source import DEMO, DEMO_PIPELINE_DIR, looks_like_path

    if source == DEMO:
        folder: Path | None = DEMO_PIPELINE_DIR
    elif looks_like_path(source):
        folder = Path(source).expanduser()
    else:
        cache = hub_cache_dir()
        commit = hub_cached_commit(source, cache)
        folder = None
        if commit:
            folder = cache / f"models--{source.replace('/', '--')}" / "snapshots" / commit
    layout = read_layout(folder)
    return None if layout is None else layout.class_name


def content_identity(model: ModelSource, hash_cache: Path | None) -> str | None:
    """What the model *is*, for the image store's keys: a content hash of its folder
    (``hash_cache`` keeps the file hashes), or a Hub repository at its cached commit."""
    if model.kind == "hub":
        snapshot = model_folder(model)  # named after its commit
        return f"hub:{model.location}@{snapshot.name}" if snapshot else None
    from sdcnn.generate.image_store import folder_fingerprint

    return "sha256:" + folder_fingerprint(Path(model.location), hash_cache)
