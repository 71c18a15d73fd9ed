"""A content-addressed store of finished images, so no image is computed twice.

An image's key holds everything that decides its pixels: the model's content
identity, prompt, negative prompt, seed, steps, guidance, size, scheduler, the
device, dtype and thread count it ran with, the versions of torch, diffusers and
transformers, and what decides the kernels (``sdcnn.core.kernels.kernel_environment``:
CPU, kernel knobs, GPU model, CUDA and cuDNN).  The entry's name is the sha256 of that
key.  So a store shared by the nodes of a mixed cluster never hands a node an image
made with other kernels, which can differ from what it computes by a level in a few
pixels; ``store.across_machines: true`` leaves the kernels out of the key, and such
images are reused as they are (each entry still records where it was made).

The generate step looks every image up before it loads the pipeline, and puts
each image in the store the moment it is finished.  So switching a setting back
to an earlier value, asking for one more image, or re-running after a killed
run computes only the images never finished before.  Snakemake's outputs stay
as they are; the store is an optimisation that may be deleted at any time.

Layout: ``<root>/images/<2 hex>/<sha256>.png`` holds the pixels (a PNG without
text chunks) and ``<sha256>.json`` the key plus the PNG's sha256.  Both are
written to temporary files and renamed; the JSON is written last and marks the
entry complete.  An entry whose PNG does not match its recorded hash is
discarded and recomputed.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdcnn.core.fileio import sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from sdcnn.core.provenance import canonical_json

log = logging.getLogger(__name__)

STORE_FORMAT = 3  # 2: entries record the safety checker's verdict; 3: and the kernels


def key_digest(key: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json(key).encode("utf-8"))


def png_pixels_bytes(image: Any) -> bytes:
    """The image as a PNG with no metadata: the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class StoredImage:
    image: Any  # a PIL image
    flagged: bool | None  # the safety checker's verdict (None: the pipeline had none)
    made_on: dict[str, Any] | None = None  # the kernel environment it was made with


@dataclass(frozen=True)
class ImageStore:
    root: Path
    across_machines: bool = False  # True: keys leave out the kernel environment

    def _paths(self, digest: str) -> tuple[Path, Path]:
        folder = self.root / "images" / digest[:2]
        return folder / f"{digest}.png", folder / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> Any | None:
        """The stored image for ``key`` (a PIL image), or None; verified against its hash."""
        entry = self.get_entry(key)
        return None if entry is None else entry.image

    def get_entry(self, key: dict[str, Any]) -> StoredImage | None:
        """The stored image for ``key`` and its safety verdict, or None (verified)."""
        from PIL import Image

        digest = key_digest(key)
        png_path, json_path = self._paths(digest)
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            data = png_path.read_bytes()
        except (OSError, ValueError):
            return None
        if record.get("key") != key or record.get("png_sha256") != sha256_bytes(data):
            log.warning("image store entry %s is damaged: discarding it", digest)
            self.discard(digest)
            return None
        image = Image.open(io.BytesIO(data))
        image.load()
        return StoredImage(image, record.get("safety_flagged"), record.get("made_on"))

    def put(
        self,
        key: dict[str, Any],
        image: Any,
        flagged: bool | None = None,
        made_on: dict[str, Any] | None = None,
    ) -> str:
        """Store ``image`` under ``key`` atomically, with its safety checker's verdict
        (``flagged``: True, False, or None for no checker) and the kernel environment it
        was made with; returns the entry's digest."""
        digest = key_digest(key)
        png_path, json_path = self._paths(digest)
        data = png_pixels_bytes(image)
        write_bytes_atomic(png_path, data)
        record = {
            "key": key,
            "png_sha256": sha256_bytes(data),
            "safety_flagged": flagged,
            "made_on": made_on,
        }
        write_json_atomic(json_path, record)
        return digest

    def discard(self, digest: str) -> None:
        for path in self._paths(digest):
            path.unlink(missing_ok=True)


def visible_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every file in ``folder``, sorted; hidden files and
    folders (such as Snakemake's ``.snakemake_timestamp``, a ``.cache``) left out."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files.append((relative.as_posix(), path))
    return files


def folder_fingerprint(folder: Path, hash_cache: Path | None = None) -> str:
    """sha256 over (relative path, content sha256) of every file in ``folder``.

    Hidden files (such as Snakemake's ``.snakemake_timestamp``) are skipped.
    File hashes are cached in ``hash_cache`` keyed by path, size and mtime, so
    a multi-gigabyte checkpoint is read once, not once per job.
    """
    cache: dict[str, str] = {}
    if hash_cache is not None and hash_cache.is_file():
        try:
            cache = json.loads(hash_cache.read_text(encoding="utf-8"))
        except ValueError:
            cache = {}
    entries, changed = [], False
    for relative, path in visible_files(folder):
        stat = path.stat()
        cache_key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if cache_key not in cache:
            cache[cache_key], changed = sha256_file(path), True
        entries.append([relative, cache[cache_key]])
    if hash_cache is not None and changed:
        write_json_atomic(hash_cache, cache)
    return sha256_bytes(canonical_json(entries).encode("utf-8"))


def store_from_config(store_config: dict[str, Any]) -> ImageStore | None:
    """The store the config asks for (``store.enabled``, ``store.path``,
    ``store.across_machines``), or None."""
    if not store_config.get("enabled", True):
        return None
    root = Path(os.path.expanduser(store_config.get("path", ".image-store")))
    return ImageStore(root, bool(store_config.get("across_machines", False)))
