"""The generate path (sdcnn/generate/pipeline.py) for every text-to-image family: the call's
arguments, the scheduler check, the dtype for each precision, the GPU preparation, batches."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from sdcnn.core.errors import StepError
from sdcnn.generate.model_identity import model_class_name
from sdcnn.generate.model_source import DEMO_PIPELINE_DIR
from sdcnn.generate.pipeline import (
    GenerationSettings,
    PromptSpec,
    call_arguments,
    dtype_name,
    generation_dtype,
    place_on_device,
    planned_runtime,
    prepare_for_device,
    resolve_size,
    run_pipeline,
    swap_scheduler,
    vae_tiling_on,
)
from tests.support.families import FAMILIES, FAMILY_FACTS
from tests.support.pipelines import SETTINGS, load, model

PROMPT = PromptSpec("circle", "a red circle", "", 1)


def generate(folder: Path, settings: GenerationSettings, prompt: PromptSpec = PROMPT) -> Any:
    pipeline = load(folder, settings.scheduler)
    settings = resolve_size(settings, model(folder))
    return run_pipeline(pipeline, prompt, [7], settings)


@pytest.mark.parametrize("name", FAMILIES)
def test_precision_auto_picks_the_familys_dtype(name: str) -> None:
    pipeline_class = FAMILY_FACTS[name]["pipeline"]
    bf16 = name in ("sd3", "flux-schnell", "flux-dev", "sana")
    runtime = planned_runtime(gpus=1, precision="auto", versions={}, model_class=pipeline_class)
    assert runtime["dtype"] == ("bfloat16" if bf16 else "float16")
    assert (
        planned_runtime(gpus=0, precision="auto", versions={}, model_class=pipeline_class)["dtype"]
        == "float32"
    )
    assert dtype_name("fp16", "cuda", pipeline_class) == "float16"  # as configured
    assert dtype_name("fp32", "cuda", pipeline_class) == "float32"


def test_the_demo_and_an_unread_model_keep_fp16() -> None:
    assert model_class_name("demo") == "StableDiffusionPipeline"
    assert dtype_name("auto", "cuda", None) == "float16"
    assert model_class_name("someone/not-in-the-cache") is None


# ---- the call's arguments


def test_an_empty_negative_prompt_is_not_passed(family_folders: dict[str, Path]) -> None:
    pipeline = load(family_folders["pixart-sigma"])
    settings = resolve_size(SETTINGS, model(family_folders["pixart-sigma"]))
    assert "negative_prompt" not in call_arguments(pipeline, PROMPT, 1, settings)
    (image,) = run_pipeline(pipeline, PROMPT, [7], settings)  # None would fail in PixArt
    assert image.flagged is None  # no safety checker: no verdict
    negative = dataclasses.replace(PROMPT, negative_prompt="blurry")
    assert call_arguments(pipeline, negative, 2, settings)["negative_prompt"] == ["blurry"] * 2


class NoGuidance:
    """A pipeline whose call takes neither guidance_scale nor negative_prompt."""

    def __call__(
        self,
        prompt: Any,
        num_inference_steps: int,
        height: int,
        width: int,
        generator: Any = None,
        output_type: str = "pil",
        **kwargs: Any,
    ) -> Any:
        raise AssertionError("not called")


def test_only_the_arguments_the_call_takes_are_passed() -> None:
    settings = dataclasses.replace(SETTINGS, height=64, width=64, true_cfg_scale=3.0)
    arguments = call_arguments(NoGuidance(), PROMPT, 2, settings)
    assert arguments == {
        "prompt": ["a red circle"] * 2,
        "num_inference_steps": 2,
        "height": 64,
        "width": 64,
    }  # a **kwargs takes no setting
    with pytest.raises(StepError, match=r"'circle' has a negative_prompt"):
        call_arguments(NoGuidance(), dataclasses.replace(PROMPT, negative_prompt="x"), 1, settings)


def test_flux_takes_true_cfg_scale_and_warns_of_an_unused_negative(
    family_folders: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = load(family_folders["flux-dev"])
    settings = resolve_size(SETTINGS, model(family_folders["flux-dev"]))
    negative = dataclasses.replace(PROMPT, negative_prompt="blurry")
    with caplog.at_level(logging.WARNING):
        arguments = call_arguments(pipeline, negative, 1, settings)
    assert arguments["true_cfg_scale"] == 1.0
    assert "true_cfg_scale > 1" in caplog.text
    sd1 = load(family_folders["sd1"])
    assert "true_cfg_scale" not in call_arguments(sd1, negative, 1, settings)


def test_the_demo_call_is_what_it_was(tmp_path: Path) -> None:
    """The SD 1.x path passes what it always passed: an empty negative prompt left out gives
    the pixels of ``negative_prompt=None``."""
    import numpy as np
    import torch

    pipeline = load(DEMO_PIPELINE_DIR, "ddim")
    settings = dataclasses.replace(
        resolve_size(SETTINGS, model(DEMO_PIPELINE_DIR)), scheduler="ddim"
    )
    (made,) = run_pipeline(pipeline, PROMPT, [5], settings)
    before = pipeline(
        prompt=[PROMPT.text],
        negative_prompt=None,
        num_inference_steps=2,
        guidance_scale=4.0,
        height=settings.height,
        width=settings.width,
        generator=[torch.Generator(device="cpu").manual_seed(5)],
        output_type="pil",
    ).images[0]
    assert np.array_equal(np.asarray(made.image), np.asarray(before))


# ---- the scheduler


@pytest.mark.parametrize(
    ("name", "scheduler"),
    [
        ("sd3", "ddim"),
        ("flux-schnell", "ddim"),
        ("flux-dev", "euler"),
        ("sd1", "flow_euler"),
        ("pixart-sigma", "flow_heun"),
        ("sana", "ddim"),
    ],
)
def test_a_scheduler_of_the_other_kind_is_refused_before_loading(
    name: str, scheduler: str, family_folders: dict[str, Path]
) -> None:
    with pytest.raises(StepError, match=r"generation\.scheduler") as error:
        load(family_folders[name], scheduler)
    shipped = FAMILY_FACTS[name]["scheduler"]
    assert shipped in str(error.value)
    first_fit = "flow_euler" if FAMILY_FACTS[name]["flow_matching"] else "ddim"
    assert f"Choices that fit: default, {first_fit}" in str(error.value)


def test_the_loaded_pipelines_scheduler_is_checked_too(family_folders: dict[str, Path]) -> None:
    """A Hub id has no folder to read before loading: the loaded scheduler decides."""
    pipeline = load(family_folders["sd3"])
    with pytest.raises(StepError, match=r"generation\.scheduler 'pndm'.*FlowMatchEuler"):
        swap_scheduler(pipeline, "pndm")


def test_flux_refuses_flow_heun_for_its_sigmas(family_folders: dict[str, Path]) -> None:
    with pytest.raises(StepError, match="custom sigmas"):
        load(family_folders["flux-schnell"], "flow_heun")


@pytest.mark.parametrize(
    ("name", "scheduler"),
    [
        ("sd3", "flow_euler"),
        ("sd3", "flow_heun"),
        ("flux-dev", "flow_euler"),
        ("sana", "flow_heun"),
        ("sana", "dpm_multistep"),
        ("pixart-sigma", "ddim"),
    ],
)
def test_a_fitting_scheduler_draws(
    name: str, scheduler: str, family_folders: dict[str, Path]
) -> None:
    settings = dataclasses.replace(SETTINGS, scheduler=scheduler)
    (made,) = generate(family_folders[name], settings)
    side = FAMILY_FACTS[name]["native_size"]
    assert made.image.size == (side, side)


# ---- the GPU path: channels-last, compile, offload, VAE tiling


class Module:
    """Records what is done to it; its class name says what kind of module it is."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def to(self, *args: Any, memory_format: Any = None) -> Module:
        self.calls.append("channels_last" if memory_format is not None else f"to {args}")
        return self

    def enable_tiling(self) -> None:
        self.calls.append("tiling")


class FluxTransformer2DModel(Module):
    pass


class AutoencoderKL(Module):
    pass


class UNet2DConditionModel(Module):
    pass


class TransformerPipeline(Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer, self.vae = FluxTransformer2DModel(), AutoencoderKL()

    def enable_model_cpu_offload(self) -> None:
        self.calls.append("model offload")

    def enable_sequential_cpu_offload(self) -> None:
        self.calls.append("sequential offload")


def test_channels_last_only_for_convolutional_modules() -> None:
    pipeline = TransformerPipeline()
    prepare_for_device(pipeline, "cuda", compile_denoiser=False)
    assert pipeline.transformer.calls == []
    assert pipeline.vae.calls == ["channels_last"]
    unet_pipeline = TransformerPipeline()
    del unet_pipeline.transformer
    unet_pipeline.unet = UNet2DConditionModel()
    prepare_for_device(unet_pipeline, "cuda", compile_denoiser=False)
    assert unet_pipeline.unet.calls == ["channels_last"]
    on_cpu = TransformerPipeline()
    prepare_for_device(on_cpu, "cpu", compile_denoiser=False)
    assert on_cpu.vae.calls == []


def test_compile_compiles_whichever_denoiser(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    compiled: list[Any] = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or "compiled")
    pipeline = TransformerPipeline()
    transformer = pipeline.transformer
    prepare_for_device(pipeline, "cpu", compile_denoiser=True)
    assert compiled == [transformer]
    assert pipeline.transformer == "compiled"


def test_vae_tiling_when_asked_or_large() -> None:
    pipeline = TransformerPipeline()
    prepare_for_device(pipeline, "cpu", compile_denoiser=False, vae_tiling=True)
    assert pipeline.vae.calls == ["tiling"]
    sized = dataclasses.replace(SETTINGS, height=1024, width=1024)
    assert not vae_tiling_on(sized)
    assert vae_tiling_on(dataclasses.replace(sized, height=4096, width=4096))
    assert vae_tiling_on(dataclasses.replace(sized, vae_tiling="always"))
    assert not vae_tiling_on(dataclasses.replace(sized, height=4096, vae_tiling="never"))


def test_vae_tiling_needs_a_vae_that_tiles() -> None:
    pipeline = TransformerPipeline()
    pipeline.vae = object()
    with pytest.raises(StepError, match=r"generation\.vae_tiling: never"):
        prepare_for_device(pipeline, "cpu", compile_denoiser=False, vae_tiling=True)


@pytest.mark.parametrize(
    ("offload", "device", "calls"),
    [
        ("none", "cuda", ["to ('cuda',)"]),
        ("model", "cuda", ["model offload"]),
        ("sequential", "cuda", ["sequential offload"]),
        ("model", "cpu", ["to ('cpu',)"]),
    ],
)
def test_offload_calls_the_right_method(offload: str, device: str, calls: list[str]) -> None:
    pipeline = TransformerPipeline()
    assert place_on_device(pipeline, device, offload) is pipeline
    assert pipeline.calls == calls
    with pytest.raises(StepError, match=r"generation\.offload"):
        place_on_device(pipeline, device, "all")


@pytest.mark.parametrize(
    "precision, dtype",
    [("auto", "float16"), ("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")],
)
def test_precision_on_cuda(precision: str, dtype: str) -> None:
    assert dtype_name(precision, "cuda") == dtype


@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16", "fp32"])
def test_the_cpu_always_runs_in_float32(precision: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sdcnn.generate.pipeline"):
        assert str(generation_dtype(precision, "cpu")) == "torch.float32"
    warned = "applies on a GPU only" in caplog.text
    assert warned == (precision in ("fp16", "bf16"))


def test_unknown_precision_is_an_error() -> None:
    with pytest.raises(StepError, match="generation.precision 'fp8'"):
        dtype_name("fp8", "cuda")


def test_batches_are_consecutive_and_fixed() -> None:
    from sdcnn.generate.pipeline import batches

    assert [list(b) for b in batches(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [list(b) for b in batches(3, 1)] == [[0], [1], [2]]
    assert [list(b) for b in batches(3, 8)] == [[0, 1, 2]]
    # one more image changes only the last batch
    assert batches(6, 2)[:2] == batches(5, 2)[:2]


def test_the_planned_runtime_follows_the_gpu_request() -> None:
    from sdcnn.generate.pipeline import planned_runtime

    versions = {"torch": "2.13.0"}
    assert planned_runtime(gpus=0, precision="fp16", versions=versions) == {
        "device": "cpu",
        "dtype": "float32",
        "versions": versions,
    }
    on_gpu = planned_runtime(gpus=1, precision="auto", versions=versions)
    assert (on_gpu["device"], on_gpu["dtype"]) == ("cuda", "float16")
    assert planned_runtime(gpus=1, precision="bf16", versions={})["dtype"] == "bfloat16"
