"""The project's file writing (sdcnn/core/fileio.py): one JSON style for every output,
and stale temporaries cleaned up without a race."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdcnn.core.fileio import dumps_json, remove_stale_temporaries


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
