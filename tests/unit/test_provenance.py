"""Versions and config hashes recorded with the outputs."""

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


def test_julia_versions_come_from_the_instantiate_stamp(tmp_path) -> None:  # noqa: ANN001
    from sdcnn.classify.flux_backend import versions_from_stamp
    from sdcnn.reporting.manifest import manifest_document

    stamp = tmp_path / "instantiated.txt"
    stamp.write_text(
        "julia 1.10.4\n"
        "Status `/home/me/sdcnn/julia/Manifest.toml`\n"
        "  [052768ef] CUDA v5.8.2\n"
        "  [587475ba] Flux v0.16.5\n"
        "  [872c559c] NNlib v0.9.36\n"
        "  [a93c6f00] DataFrames v1.7.0\n"
    )
    assert versions_from_stamp(stamp.read_text()) == {
        "julia": "1.10.4", "CUDA": "5.8.2", "Flux": "0.16.5", "NNlib": "0.9.36",
    }  # fmt: skip
    prediction = tmp_path / "p.json"
    prediction.write_text('{"backend": "flux"}')
    document = manifest_document([], [prediction], "hash", stamp, snakemake_version="9.0.0")
    assert document["backends"] == ["flux"]
    assert document["versions"]["Flux"] == "0.16.5" and document["versions"]["julia"] == "1.10.4"
    assert document["versions"]["snakemake"] == "9.0.0"
    assert document["versions"]["torch"] == metadata.version("torch")


def test_env_file_versions_read_the_conda_pins_under_the_reported_names() -> None:
    from sdcnn.core.provenance import env_file_versions

    env = {"dependencies": ["python =3.11", "pytorch =2.13.0", "pytorch-gpu =2.13.0",
                            "diffusers ==0.42.1", "numpy", {"pip": ["x==1"]}]}  # fmt: skip
    assert env_file_versions(env, ("torch", "diffusers", "transformers")) == {
        "python": "3.11", "torch": "2.13.0", "diffusers": "0.42.1", "transformers": None,
    }  # fmt: skip


def test_the_planned_runtime_follows_the_gpu_request() -> None:
    from sdcnn.generate.pipeline import planned_runtime

    versions = {"torch": "2.13.0"}
    assert planned_runtime(gpus=0, precision="fp16", versions=versions) == {
        "device": "cpu", "dtype": "float32", "versions": versions,
    }  # fmt: skip
    on_gpu = planned_runtime(gpus=1, precision="auto", versions=versions)
    assert (on_gpu["device"], on_gpu["dtype"]) == ("cuda", "float16")
    assert planned_runtime(gpus=1, precision="bf16", versions={})["dtype"] == "bfloat16"
