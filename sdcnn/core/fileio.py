"""Atomic writes and content hashes.

Every output is written to a temporary sibling and renamed into place, so a
killed or failed job never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(*, directory: bool) -> int:
    """The mode a plain ``open``/``mkdir`` would give (mkstemp/mkdtemp give 0600/0700)."""
    return (0o777 if directory else 0o666) & ~_current_umask()


def remove_stale_temporaries(final: Path) -> None:
    """Delete ``.<name>.*.tmp`` siblings of ``final`` left by a process that was killed.

    Only the one job that makes ``final`` writes those names, so any that exist
    when it starts are left over from an earlier, killed attempt.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.fchmod(fd, _default_mode(directory=False))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; rename it onto ``path`` on success.

    An existing ``path`` is replaced only once the new directory is complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(_default_mode(directory=True))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def dumps_json(document: Any) -> str:
    """The one JSON style of every output: 2-space indent, UTF-8, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    write_bytes_atomic(path, dumps_json(document).encode("utf-8"))


def dumps_json_around(document: dict[str, Any], key: str) -> tuple[str, str]:
    """``dumps_json(document)`` cut where the items of the list ``document[key]`` (a
    top-level key) go: the text before them and the text after, so that a list too long
    to hold in memory is streamed in between, its items indented by 4 spaces and joined
    by ``",\n"``, for the same bytes as ``dumps_json`` of the whole document.

    The cut is at a placeholder item no other text of the document holds (a key or a
    value spelt like it takes the next one)."""
    attempt = 0
    while True:
        placeholder = json.dumps(f"@@sdcnn-{key}-{attempt}@@")
        text = dumps_json({**document, key: [json.loads(placeholder)]})
        if text.count(placeholder) == 1:
            head, tail = text.split(f"    {placeholder}")
            return head, tail
        attempt += 1
