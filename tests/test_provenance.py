"""Versions and config hashes recorded with the outputs."""

from __future__ import annotations

from importlib import metadata

from sdcnn.provenance import config_sha256, package_versions


def test_versions_come_from_the_installed_distributions() -> None:
    versions = package_versions()
    assert versions["numpy"] == metadata.version("numpy")
    assert versions["torch"] == metadata.version("torch")
    assert versions["opencv"] is not None
    assert versions["python"].count(".") == 2


def test_config_hash_ignores_key_order_but_not_values() -> None:
    first = {"a": 1, "b": {"c": [1, 2], "d": "x"}}
    reordered = {"b": {"d": "x", "c": [1, 2]}, "a": 1}
    assert config_sha256(first) == config_sha256(reordered)
    assert config_sha256(first) != config_sha256({**first, "a": 2})
    assert config_sha256(first) != config_sha256({**first, "b": {"c": [2, 1], "d": "x"}})
