"""The project's file writing (sdcnn/core/fileio.py): one JSON style for every output,
and stale temporaries cleaned up without a race."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest

from sdcnn.core.fileio import (
    dumps_json,
    dumps_json_around,
    remove_stale_temporaries,
    sha256_file,
)


def test_every_json_output_has_one_style() -> None:
    text = dumps_json({"b": [1, 2.5], "é": "ü ✓", "n": None})
    assert text == '{\n  "b": [\n    1,\n    2.5\n  ],\n  "é": "ü ✓",\n  "n": null\n}\n', text


def test_json_outputs_refuse_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps_json({"p": float("nan")})


def test_a_stale_temporary_gone_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another cleaner may remove a stale file between the listing and the unlink."""
    final = tmp_path / "images"
    vanished = tmp_path / ".images.abc.tmp"  # listed, but no longer there
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    remove_stale_temporaries(final)


def test_a_stale_temporary_folder_gone_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for a file: another cleaner may remove a stale folder after it was seen to be one."""
    final = tmp_path / "images"
    vanished = tmp_path / ".images.abc.tmp"  # listed as a folder, but no longer there
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    monkeypatch.setattr(Path, "is_dir", lambda self: True)
    remove_stale_temporaries(final)


def test_hashing_a_large_file_holds_only_a_chunk_of_it(tmp_path: Path) -> None:
    """A multi-gigabyte checkpoint is hashed in 1 MiB reads, never read into memory whole."""
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB, not all one byte
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        digest = sha256_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(data).hexdigest()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held while hashing a 12 MiB file"


@pytest.mark.parametrize("key", ["rows", "files"])
def test_a_streamed_list_between_the_cut_gives_the_whole_documents_bytes(key: str) -> None:
    """What summary and manifest stream: the text before the list's items, the items
    (indented by 4 spaces, joined by ",\\n"), then the text after."""
    items = [{"a": 1, "é": [True, None]}, "two", 3.5]
    document = {"before": {"x": [1, 2]}, key: items, "after": "end"}
    head, tail = dumps_json_around({**document, key: []}, key)
    streamed = ",\n".join(
        "\n".join("    " + line for line in dumps_json(item).rstrip("\n").split("\n"))
        for item in items
    )
    assert head + streamed + tail == dumps_json(document)
    assert list(json.loads(head + tail)) == ["before", key, "after"]  # the keys' order kept


def test_the_cut_is_at_no_text_of_the_document_spelt_like_its_placeholder() -> None:
    """Keys and values spelt like the placeholder, before and after the list, are kept
    where they are; the cut is at the list's own item."""
    spelt = {"@@sdcnn-rows-0@@": "@@sdcnn-rows-0@@", "@@sdcnn-rows-1@@": ["@@sdcnn-rows-1@@"]}
    document = {"columns": spelt, "rows": [], "metrics": spelt}
    head, tail = dumps_json_around(document, "rows")
    whole = json.loads(head + '    "item"' + tail)
    assert whole == {**document, "rows": ["item"]}
