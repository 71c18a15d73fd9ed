"""The content-addressed image store: keys, verification, atomic entries, model identity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from sdcnn.core.fileio import atomic_directory
from sdcnn.generate.image_store import ImageStore, folder_fingerprint, key_digest

KEY = {"model": "sha256:abc", "prompt": "a city", "seed": 7, "steps": 2, "threads": 1}


def noise_image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def test_put_then_get_returns_the_same_pixels(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    assert store.get(KEY) is None
    store.put(KEY, noise_image(1))
    again = store.get(KEY)
    assert again is not None
    np.testing.assert_array_equal(np.asarray(again), np.asarray(noise_image(1)))


def test_any_key_field_changes_the_entry(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.put(KEY, noise_image(1))
    for field, value in [("seed", 8), ("prompt", "a City"), ("steps", 3), ("model", "sha256:abd")]:
        assert store.get({**KEY, field: value}) is None
    assert key_digest(KEY) == key_digest(dict(reversed(list(KEY.items()))))


def test_damaged_entry_is_discarded_not_returned(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    png = tmp_path / "images" / digest[:2] / f"{digest}.png"
    png.write_bytes(png.read_bytes()[:-10])  # truncated, e.g. by a full disk
    assert store.get(KEY) is None
    assert not png.exists()


def test_png_without_its_record_is_not_an_entry(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    (tmp_path / "images" / digest[:2] / f"{digest}.json").unlink()  # killed between the writes
    assert store.get(KEY) is None


def test_fingerprint_follows_content_not_hidden_files_or_mtime(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    (model / "unet" / "weights.bin").write_bytes(b"\x00" * 100)
    cache = tmp_path / "hashes.json"
    first = folder_fingerprint(model, cache)
    (model / ".snakemake_timestamp").write_text("")
    (model / "unet" / "weights.bin").touch()
    assert folder_fingerprint(model, cache) == first
    (model / "unet" / "weights.bin").write_bytes(b"\x00" * 99 + b"\x01")
    assert folder_fingerprint(model, cache) != first
    assert cache.is_file()


def test_atomic_directory_clears_what_a_killed_attempt_left(tmp_path: Path) -> None:
    stale = tmp_path / ".images.abc123.tmp"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"half")
    with atomic_directory(tmp_path / "images") as folder:
        (folder / "done.png").write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["done.png"]


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    from sdcnn.core.fileio import write_bytes_atomic

    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "file.json", b"{}")
        with atomic_directory(tmp_path / "folder") as folder:
            (folder / "x.png").write_bytes(b"png")
    finally:
        os.umask(old)
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_batches_are_consecutive_and_fixed() -> None:
    from sdcnn.generate.pipeline import batches

    assert [list(b) for b in batches(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [list(b) for b in batches(3, 1)] == [[0], [1], [2]]
    assert [list(b) for b in batches(3, 8)] == [[0, 1, 2]]
    # one more image changes only the last batch
    assert batches(6, 2)[:2] == batches(5, 2)[:2]
