"""Model sources (sdcnn/generate/model_source.py): a missing or incomplete local folder, a Hub
id that is not available, the native size read before loading.

Real folders and a real (closed) network port; no mocks of diffusers or the Hub client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from sdcnn.core.errors import StepError
from sdcnn.generate import families
from sdcnn.generate.model_source import (
    ModelSource,
    check_local_pipeline,
    check_model_available,
    hub_error,
    hub_unreachable_reason,
    native_size,
    resolve_model_source,
)
from sdcnn.generate.pipeline import check_native_size, resolve_size
from tests.support.families import FAMILIES, FAMILY_FACTS
from tests.support.network import closed_port_url
from tests.support.pipelines import SETTINGS, load, model

INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "scheduler": ["diffusers", "DDIMScheduler"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def pipeline_folder(root: Path, index: object = INDEX, empty: tuple[str, ...] = ()) -> Path:
    """A folder shaped like a saved pipeline: model_index.json and one folder per component."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(index))
    for name in ("scheduler", "unet", "vae"):
        (root / name).mkdir(exist_ok=True)
        if name not in empty:
            (root / name / "config.json").write_text("{}")
    return root


def test_sources_are_classified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "sd").mkdir(parents=True)
    assert resolve_model_source("demo", "results/models/demo").kind == "demo"
    assert resolve_model_source("./nowhere", "").kind == "local"
    assert resolve_model_source("models/sd", "").kind == "local"  # an existing folder
    assert resolve_model_source("stabilityai/sd-turbo", "").kind == "hub"
    with pytest.raises(StepError, match=r"'not an id' is neither 'demo'.*write a local folder"):
        resolve_model_source("not an id", "")


def test_complete_pipeline_folder_passes(tmp_path: Path) -> None:
    check_local_pipeline(str(pipeline_folder(tmp_path / "sd")))


def test_missing_folder_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(StepError) as caught:
        check_local_pipeline(str(tmp_path / "nowhere"))
    message = str(caught.value)
    assert f"model folder '{tmp_path / 'nowhere'}' does not exist" in message
    assert f"hf download <organisation/name> --local-dir {tmp_path / 'nowhere'}" in message
    assert "model.source: demo" in message


def test_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(StepError, match=r"model.safetensors' is a file; point it at the folder"):
        check_local_pipeline(str(tmp_path / "model.safetensors"))


def test_folder_without_model_index_is_not_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(StepError, match=r"is not a diffusers pipeline \(it has no model_index"):
        check_local_pipeline(str(tmp_path / "checkpoints"))
    pipeline_folder(tmp_path / "checkpoints" / "sd15")
    with pytest.raises(StepError, match=r"did you mean '.*checkpoints/sd15'\?"):
        check_local_pipeline(str(tmp_path / "checkpoints"))


@pytest.mark.parametrize("index", ["{not json", "[1, 2]"])
def test_broken_model_index_is_named(tmp_path: Path, index: str) -> None:
    folder = pipeline_folder(tmp_path / "sd")
    (folder / "model_index.json").write_text(index)
    with pytest.raises(StepError, match=r"sd/model_index\.json is not (valid JSON|a JSON object)"):
        check_local_pipeline(str(folder))


def test_incomplete_download_names_the_missing_components(tmp_path: Path) -> None:
    folder = pipeline_folder(tmp_path / "sd", empty=("vae",))
    (folder / "unet" / "config.json").unlink()
    (folder / "unet").rmdir()
    with pytest.raises(StepError, match=r"is incomplete: model_index\.json lists unet, vae, but"):
        check_local_pipeline(str(folder))


# ---- Hub ids


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def closed_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Hub endpoint nobody answers."""
    with closed_port_url() as endpoint:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        yield endpoint


def cache_model(cache: Path, repo_id: str) -> None:
    """The layout huggingface_hub writes: refs/main -> snapshots/<revision>/<file>."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps(INDEX))


HUB = ModelSource("hub", "sdcnn-test/no-such-model", "sdcnn-test/no-such-model")


def test_offline_hub_id_not_in_cache_fails_with_advice(empty_hub_cache: Path) -> None:
    with pytest.raises(StepError) as caught:
        check_model_available(HUB, allow_download=False)
    message = str(caught.value)
    assert "'sdcnn-test/no-such-model' is not (completely) in the local Hugging Face" in message
    assert str(empty_hub_cache) in message
    assert "model.allow_download: false" in message
    assert (
        "hf download sdcnn-test/no-such-model --local-dir ./models/sdcnn-test/no-such-model"
        in message
    )
    assert "set model.allow_download: true" in message


def test_offline_hub_id_in_cache_goes_on(empty_hub_cache: Path) -> None:
    cache_model(empty_hub_cache, HUB.location)
    assert check_model_available(HUB, allow_download=False) is None


def test_unreachable_hub_is_reported_after_one_request(closed_hub: str) -> None:
    reason = hub_unreachable_reason(HUB.location, timeout=5)
    assert reason is not None and reason.startswith("ConnectError")


def test_unreachable_hub_without_cached_model_fails(closed_hub: str, empty_hub_cache: Path) -> None:
    with pytest.raises(StepError) as caught:
        check_model_available(HUB, allow_download=True)
    message = str(caught.value)
    assert "the Hugging Face Hub cannot be reached (ConnectError" in message
    assert "Check the network (or HF_ENDPOINT and the proxy settings)" in message
    assert "hf download sdcnn-test/no-such-model" in message


def test_unreachable_hub_with_cached_model_loads_from_cache(
    closed_hub: str, empty_hub_cache: Path
) -> None:
    cache_model(empty_hub_cache, HUB.location)
    reason = check_model_available(HUB, allow_download=True)
    assert reason is not None and reason.startswith("ConnectError")  # -> local_files_only


def test_hub_answer_that_is_an_error_is_passed_on() -> None:
    error = OSError("401 Client Error\nmore lines")
    message = str(hub_error(HUB, error, allow_download=True))
    assert "could not be loaded from the Hugging Face Hub (OSError: 401 Client Error)" in message
    assert "https://huggingface.co/sdcnn-test/no-such-model" in message
    assert "hf auth login" in message


def test_hub_like_id_under_an_existing_folder_hints_at_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model = resolve_model_source("models/sd15", "")  # no such folder: read as a Hub id
    assert model.kind == "hub"
    message = str(hub_error(model, FileNotFoundError("x")))
    assert f"If you meant a local folder: 'models/sd15' does not exist under {tmp_path}" in message


@pytest.mark.parametrize("name", FAMILIES)
def test_the_native_size_read_before_loading_is_the_loaded_pipelines(
    name: str, family_folders: dict[str, Path]
) -> None:
    folder = family_folders[name]
    side = native_size(model(folder))
    assert side == FAMILY_FACTS[name]["native_size"]
    pipeline = load(folder)
    assert families.denoiser_key(pipeline) == FAMILY_FACTS[name]["denoiser"]
    assert families.loaded_native_side(pipeline) == side
    check_native_size(pipeline, side, model(folder))  # no error
    with pytest.raises(StepError, match=r"generation\.height and generation\.width"):
        check_native_size(pipeline, side * 2, model(folder))


def test_an_unknown_layout_names_the_size_keys(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "OtherPipeline"}))
    assert native_size(model(tmp_path)) is None
    with pytest.raises(StepError, match=r"generation\.height/width"):
        resolve_size(SETTINGS, model(tmp_path))
