"""The tiny pipelines of tests/support/families.py are what they stand for: each loads with
DiffusionPipeline as its real checkpoint does, with the real family's pipeline, denoiser and
scheduler classes, reads real prompts, and draws at the native size FAMILY_FACTS states.

The tests that load a pipeline are marked ``pipeline`` (diffusers; under a second each).
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.families import FAMILIES, FAMILY_FACTS, build_family, build_pipeline

PROMPT = "a red circle"
FACT_KEYS = {
    "pipeline",
    "denoiser",
    "scheduler",
    "flow_matching",
    "native_size",
    "vae_scale_factor",
    "guidance_embeds",
    "real_native_size",
    "checkpoint",
}
TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3")
DENOISER_BY_CLASS = {facts["pipeline"]: facts["denoiser"] for facts in FAMILY_FACTS.values()}


@functools.cache
def loaded(folder: Path) -> Any:
    """The pipeline saved in ``folder``, loaded once for this module's tests."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def native_size(pipe: Any) -> int:
    """The height (= width) ``pipe`` draws at when the call leaves them out, by its own rule:
    its __call__'s default (Sana: 1024), else default_sample_size (SDXL, SD3, Flux) or the
    denoiser's sample_size (SD 1.x, PixArt) x the VAE's scale factor."""
    default = inspect.signature(type(pipe).__call__).parameters["height"].default
    if default is not None:
        return default
    if hasattr(pipe, "default_sample_size"):
        return pipe.default_sample_size * pipe.vae_scale_factor
    denoiser = getattr(pipe, DENOISER_BY_CLASS[type(pipe).__name__])
    return denoiser.config.sample_size * pipe.vae_scale_factor


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_every_family_has_its_facts() -> None:
    assert set(FAMILY_FACTS) == set(FAMILIES)
    assert len(set(FAMILIES)) == len(FAMILIES)
    for name, facts in FAMILY_FACTS.items():
        assert set(facts) == FACT_KEYS, name
        assert facts["denoiser"] in ("unet", "transformer"), name
        assert facts["native_size"] % 8 == 0 and facts["native_size"] <= facts["real_native_size"]
        assert "/" in facts["checkpoint"], name


def test_an_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family 'sd9'"):
        build_family("sd9", tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.pipeline
@pytest.mark.parametrize("name", FAMILIES)
def test_folder_loads_as_the_real_family(name: str, family_folders: dict[str, Path]) -> None:
    facts = FAMILY_FACTS[name]
    folder = family_folders[name]
    assert (folder / "model_index.json").is_file()
    assert list(folder.rglob("*.safetensors")) and not list(folder.rglob("*.bin"))
    pipe = loaded(folder)
    assert type(pipe).__name__ == facts["pipeline"]
    other = "unet" if facts["denoiser"] == "transformer" else "transformer"
    assert getattr(pipe, facts["denoiser"], None) is not None
    assert getattr(pipe, other, None) is None
    assert type(pipe.scheduler).__name__ == facts["scheduler"]
    flow = type(pipe.scheduler).__name__.startswith("FlowMatch") or (
        pipe.scheduler.config.get("prediction_type") == "flow_prediction"
    )
    assert flow == facts["flow_matching"]
    denoiser = getattr(pipe, facts["denoiser"])
    assert bool(denoiser.config.get("guidance_embeds", False)) == facts["guidance_embeds"]
    assert pipe.vae_scale_factor == facts["vae_scale_factor"]
    assert native_size(pipe) == facts["native_size"]
    assert getattr(pipe, "safety_checker", None) is None


@pytest.mark.pipeline
@pytest.mark.parametrize("name", FAMILIES)
def test_tokenizers_read_real_prompts(name: str, family_folders: dict[str, Path]) -> None:
    """Every tokenizer has a vocabulary (not the 2-token one an empty folder gives) and
    turns the prompt into known tokens only."""
    pipe = loaded(family_folders[name])
    tokenizers = [getattr(pipe, key) for key in TOKENIZERS if getattr(pipe, key, None)]
    assert tokenizers
    for tokenizer in tokenizers:
        assert len(tokenizer) > 2
        ids = tokenizer(PROMPT, add_special_tokens=False).input_ids
        assert ids and tokenizer.unk_token_id not in ids, type(tokenizer).__name__
        assert tokenizer.decode(ids).strip() == PROMPT


@pytest.mark.pipeline
@pytest.mark.parametrize("name", FAMILIES)
def test_family_draws_at_its_native_size(name: str, family_folders: dict[str, Path]) -> None:
    """Two steps, height and width left out: an RGB image of the native size, the same
    again for the same seed."""
    import torch

    pipe = loaded(family_folders[name])

    def draw() -> Any:
        generator = [torch.Generator().manual_seed(0)]
        return pipe(
            prompt=[PROMPT], num_inference_steps=2, generator=generator, output_type="pil"
        ).images

    images = draw()
    size = FAMILY_FACTS[name]["native_size"]
    assert len(images) == 1
    assert images[0].size == (size, size) and images[0].mode == "RGB"
    assert draw()[0].tobytes() == images[0].tobytes()


@pytest.mark.pipeline
@pytest.mark.parametrize("name", FAMILIES)
def test_build_is_deterministic_and_keeps_a_built_folder(
    name: str, family_folders: dict[str, Path], tmp_path: Path
) -> None:
    """Built again elsewhere: the same bytes; built again there: the folder left as it is."""
    folder = build_family(name, tmp_path)
    assert folder == tmp_path / name
    assert folder_bytes(folder) == folder_bytes(family_folders[name])
    stamp = os.stat(folder / "model_index.json").st_mtime_ns
    assert build_family(name, tmp_path) == folder
    assert os.stat(folder / "model_index.json").st_mtime_ns == stamp
    assert [path.name for path in tmp_path.iterdir()] == [name]  # no temporary folder left


def test_build_pipeline_refuses_an_unknown_family() -> None:
    with pytest.raises(ValueError, match="known: sd1, sdxl"):
        build_pipeline("kandinsky")
