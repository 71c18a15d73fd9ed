"""Versions and config hashes recorded with the outputs (sdcnn/core/provenance.py)."""

from __future__ import annotations

from importlib import metadata

from sdcnn.core.provenance import config_sha256, package_versions


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


def test_env_file_versions_read_the_conda_pins_under_the_reported_names() -> None:
    from sdcnn.core.provenance import env_file_versions

    env = {
        "dependencies": [
            "python =3.11",
            "pytorch =2.13.0",
            "pytorch-gpu =2.13.0",
            "diffusers ==0.42.1",
            "numpy",
            {"pip": ["x==1"]},
        ]
    }
    assert env_file_versions(env, ("torch", "diffusers", "transformers")) == {
        "python": "3.11",
        "torch": "2.13.0",
        "diffusers": "0.42.1",
        "transformers": None,
    }
