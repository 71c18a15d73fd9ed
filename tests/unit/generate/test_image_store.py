"""The content-addressed image store (sdcnn/generate/image_store.py): keys, verification,
atomic entries, model fingerprints."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcnn.generate import image_store
from sdcnn.generate.image_store import ImageStore, folder_fingerprint, key_digest, store_from_config
from tests.support.locales import ascii_locale

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


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def test_the_store_follows_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_from_config({}) == ImageStore(Path(".image-store"))
    assert store_from_config({"enabled": True, "path": "~/store"}) == ImageStore(tmp_path / "store")
    assert store_from_config({"enabled": False, "path": "x"}) is None


def test_entries_of_different_keys_live_side_by_side(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    other = {**KEY, "seed": 8}
    assert key_digest(KEY) != key_digest(other)
    assert re.fullmatch(r"[0-9a-f]{64}", key_digest(KEY)), key_digest(KEY)
    store.put(KEY, noise_image(1))
    store.put(other, noise_image(2))
    for key, seed in ((KEY, 1), (other, 2)):
        got = store.get(key)
        assert got is not None, f"the entry of {key} is gone after another key was stored"
        np.testing.assert_array_equal(np.asarray(got), np.asarray(noise_image(seed)))


def test_a_damaged_entry_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    png = tmp_path / "images" / digest[:2] / f"{digest}.png"
    png.write_bytes(png.read_bytes()[:-4])
    caplog.set_level(logging.WARNING, logger="sdcnn.generate.image_store")
    assert store.get(KEY) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"image store entry {digest} is damaged: discarding it"
    ]


def test_discarding_a_half_entry_is_no_error(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(KEY, noise_image(1))
    (tmp_path / "images" / digest[:2] / f"{digest}.json").unlink()  # killed between writes
    store.discard(digest)
    assert list((tmp_path / "images" / digest[:2]).iterdir()) == []


def model_folder(root: Path) -> Path:
    folder = root / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "weights.bin").write_bytes(b"\x00" * 100)
    return folder


def test_fingerprint_without_a_cache(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    assert folder_fingerprint(folder) == folder_fingerprint(folder, tmp_path / "cache.json")


def test_fingerprint_reads_each_file_once_and_rewrites_the_cache_only_on_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, cache = model_folder(tmp_path), tmp_path / "cache.json"
    hashed: list[Path] = []
    written: list[Path] = []
    real_hash, real_write = image_store.sha256_file, image_store.write_json_atomic
    monkeypatch.setattr(image_store, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    monkeypatch.setattr(
        image_store, "write_json_atomic", lambda p, d: written.append(p) or real_write(p, d)
    )
    first = folder_fingerprint(folder, cache)
    assert len(hashed) == 2 and written == [cache], (hashed, written)
    assert folder_fingerprint(folder, cache) == first
    assert len(hashed) == 2, f"unchanged files were hashed again: {hashed[2:]}"
    assert written == [cache], "the cache was rewritten though nothing changed"


def test_a_damaged_hash_cache_is_ignored(tmp_path: Path) -> None:
    folder, cache = model_folder(tmp_path), tmp_path / "cache.json"
    cache.write_text("{not json")
    assert folder_fingerprint(folder, cache) == folder_fingerprint(folder)
    assert json.loads(cache.read_text()), "the damaged cache was not replaced"


MADE_ON = {"cpu": "x86_64 AVX2", "torch": "2.5.1", "cuda": None}


@pytest.mark.parametrize("flagged", [True, False, None])
def test_an_entry_keeps_the_safety_verdict_and_where_it_was_made(
    tmp_path: Path, flagged: bool | None
) -> None:
    """A reused image keeps the safety checker's verdict (True, False, None: no checker) and
    the kernel environment it was made with, as put recorded them."""
    store = ImageStore(tmp_path)
    store.put(KEY, noise_image(1), flagged=flagged, made_on=MADE_ON)
    entry = store.get_entry(KEY)
    assert entry is not None
    assert entry.flagged is flagged
    assert entry.made_on == MADE_ON
    np.testing.assert_array_equal(np.asarray(entry.image), np.asarray(noise_image(1)))


def test_an_entry_stored_without_a_verdict_says_so(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.put(KEY, noise_image(1))
    entry = store.get_entry(KEY)
    assert entry is not None and entry.flagged is None and entry.made_on is None


def test_the_store_across_machines_follows_its_config(tmp_path: Path) -> None:
    """``store.across_machines: true`` gives a store whose keys leave out the kernels."""
    root = tmp_path / "store"
    assert store_from_config({"path": str(root), "across_machines": True}) == ImageStore(
        root, across_machines=True
    )
    default = store_from_config({"path": str(root)})
    assert default is not None and default.across_machines is False


def test_an_entry_with_a_non_ascii_prompt_is_found_whatever_the_locale(tmp_path: Path) -> None:
    """Entries are UTF-8 JSON: one of a "café" prompt is found also where the locale is ASCII."""
    key = {**KEY, "prompt": "a café at dawn, crème brûlée"}
    store = ImageStore(tmp_path)
    store.put(key, noise_image(1), flagged=False)
    with ascii_locale():
        entry = store.get_entry(key)
    assert entry is not None and entry.flagged is False


def test_the_hash_cache_is_read_whatever_the_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache holds the files' paths (here non-ASCII ones) in UTF-8 JSON: where the
    locale is ASCII it is still read, and no file is hashed again."""
    folder, cache = model_folder(tmp_path / "modèle"), tmp_path / "cache.json"
    first = folder_fingerprint(folder, cache)
    hashed: list[Path] = []
    real_hash = image_store.sha256_file
    monkeypatch.setattr(image_store, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    with ascii_locale():
        assert folder_fingerprint(folder, cache) == first
    assert hashed == [], f"the cache was not read: {hashed} hashed again"
