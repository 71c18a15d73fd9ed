"""What differs between text-to-image pipeline families (Stable Diffusion 1.x/2.x/XL/3,
FLUX.1, PixArt-Σ, Sana, ...): the denoiser, the native size, the scheduler kind, the
CUDA dtype, the call's parameters.

Each fact is read from the folder's configs where that is enough (nothing loaded, so the
workflow can know it while it plans), and from the loaded pipeline otherwise.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the attributes a pipeline keeps its denoiser in, in diffusers' CLI order
DENOISER_KEYS = ("transformer", "unet")

# pipelines whose default_sample_size is a constant of their __init__, not a config value
FIXED_SAMPLE_SIZE = {"FluxPipeline": 128, "ChromaPipeline": 128, "QwenImagePipeline": 128}

# pipeline class prefixes published in bfloat16, whose transformers overflow in float16
BF16_CLASS_PREFIXES = ("Flux", "StableDiffusion3", "Sana", "Chroma", "Lumina", "QwenImage")

# generation.precision -> torch dtype on CUDA; "auto" picks per family (pipeline.dtype_name)
CUDA_DTYPES = {"auto": "float16", "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}

# generation.scheduler -> diffusers class; "default" keeps the checkpoint's own
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",
    "flow_heun": "FlowMatchHeunDiscreteScheduler",
}
FLOW_SCHEDULERS = ("flow_euler", "flow_heun")  # for flow-matching models only
# ε/v schedulers that sample a flow model when its own config asks (use_flow_sigmas)
FLOW_CAPABLE = ("dpm_multistep", "unipc")
# flow schedulers whose set_timesteps takes no custom sigmas (FLUX.1 always passes them)
NO_SIGMAS = ("flow_heun",)


@dataclass(frozen=True)
class ModelLayout:
    """A diffusers folder's configs: the pipeline class and its components' configs."""

    class_name: str
    denoiser_key: str | None  # "transformer" or "unet"; None: neither
    denoiser: Mapping[str, Any] = field(default_factory=dict)
    vae: Mapping[str, Any] = field(default_factory=dict)
    scheduler_class: str | None = None
    scheduler: Mapping[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_layout(folder: str | Path | None) -> ModelLayout | None:
    """The layout of a local diffusers folder from its JSON files; None without a readable
    ``model_index.json``."""
    if folder is None:
        return None
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    if not isinstance(index.get("_class_name"), str):
        return None
    key = next((name for name in DENOISER_KEYS if _listed(index.get(name))), None)
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    return ModelLayout(
        class_name=index["_class_name"],
        denoiser_key=key,
        denoiser=_read_json(folder / key / "config.json") if key else {},
        vae=_read_json(folder / "vae" / "config.json"),
        scheduler_class=scheduler.get("_class_name"),
        scheduler=scheduler,
    )


def _listed(entry: Any) -> bool:
    return isinstance(entry, list) and None not in entry


# ---- the denoiser


def denoiser_key(pipeline: Any) -> str:
    """The attribute that holds the pipeline's denoiser: ``transformer`` or ``unet``."""
    for key in DENOISER_KEYS:
        if getattr(pipeline, key, None) is not None:
            return key
    raise ValueError(f"{type(pipeline).__name__} has neither a transformer nor a unet")


def denoiser(pipeline: Any) -> Any:
    """The pipeline's denoiser module (its transformer or its UNet)."""
    return getattr(pipeline, denoiser_key(pipeline))


def is_convolutional(module: Any) -> bool:
    """Whether channels-last memory helps ``module``: a UNet or a VAE, not a transformer."""
    name = type(module).__name__
    return name.startswith(("UNet", "Autoencoder")) or "Conv" in name


# ---- the native size


def vae_scale_factor(vae: Mapping[str, Any]) -> int | None:
    """How much the VAE shrinks a side, from its config (as the pipelines' __init__ computes
    it): 2 ** (blocks - 1) for AutoencoderKL, of the encoder's blocks for AutoencoderDC."""
    blocks = vae.get("block_out_channels") or vae.get("encoder_block_out_channels")
    if not isinstance(blocks, list) or not blocks:
        return None
    return 2 ** (len(blocks) - 1)


def native_side(layout: ModelLayout) -> int | None:
    """The side the pipeline draws when no size is given, from the folder's configs: its
    ``default_sample_size`` (the denoiser's ``sample_size``, or the pipeline's constant)
    times the VAE's scale factor; None when the layout is not one of these."""
    sample_size = FIXED_SAMPLE_SIZE.get(layout.class_name, layout.denoiser.get("sample_size"))
    if not isinstance(sample_size, int) or isinstance(sample_size, bool):
        return None
    scale = vae_scale_factor(layout.vae)
    return None if scale is None else sample_size * scale


def loaded_native_side(pipeline: Any) -> int | None:
    """The side a loaded pipeline would draw when no size is given."""
    sample_size = getattr(pipeline, "default_sample_size", None)
    if sample_size is None:
        sample_size = getattr(denoiser(pipeline).config, "sample_size", None)
    scale = getattr(pipeline, "vae_scale_factor", None)
    if not isinstance(sample_size, int) or not isinstance(scale, int):
        return None
    return sample_size * scale


# ---- precision


def prefers_bf16(class_name: str | None) -> bool:
    """Whether a family is published in bfloat16 (FLUX.1, SD 3/3.5, Sana, ...)."""
    return class_name is not None and class_name.startswith(BF16_CLASS_PREFIXES)


# ---- schedulers


def is_flow_matching(class_name: str | None, config: Mapping[str, Any]) -> bool:
    """Whether a scheduler (a model's shipped one) samples a flow-matching model."""
    return (
        (class_name or "").startswith("FlowMatch")
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas"))
    )


def passes_sigmas(pipeline_class: type | None) -> bool:
    """Whether the pipeline always hands its scheduler custom sigmas (FLUX.1, Lumina 2),
    as its ``__call__`` reads."""
    if pipeline_class is None:
        return False
    try:
        source = inspect.getsource(pipeline_class.__call__)
    except (OSError, TypeError):
        return False
    return re.search(r"if sigmas is None else sigmas", source) is not None


def fitting_schedulers(
    class_name: str | None, config: Mapping[str, Any], *, sigmas: bool = False
) -> list[str]:
    """The ``generation.scheduler`` choices that fit a model whose shipped scheduler is
    ``class_name`` with ``config``; ``sigmas``: the pipeline always passes custom sigmas."""
    if not is_flow_matching(class_name, config):
        return ["default", *(name for name in SCHEDULERS if name not in FLOW_SCHEDULERS)]
    fits = ["default", *FLOW_SCHEDULERS]
    if config.get("use_flow_sigmas"):
        fits += FLOW_CAPABLE
    return [name for name in fits if not (sigmas and name in NO_SIGMAS)]


def scheduler_problem(
    choice: str, class_name: str | None, config: Mapping[str, Any], *, sigmas: bool = False
) -> str | None:
    """Why ``choice`` cannot sample a model with this shipped scheduler; None when it can."""
    fits = fitting_schedulers(class_name, config, sigmas=sigmas)
    if choice in fits:
        return None
    flow = is_flow_matching(class_name, config)
    if choice in NO_SIGMAS and flow and sigmas:
        why = f"{SCHEDULERS[choice]} takes no custom sigmas, which this pipeline always passes"
    elif flow:
        why = f"{choice!r} is an ε/v-prediction scheduler; the model is flow-matching"
    else:
        why = f"{choice!r} is a flow-matching scheduler; the model predicts noise (ε/v)"
    return (
        f"generation.scheduler {choice!r} does not fit this model, whose scheduler is "
        f"{class_name or 'unknown'}: {why}. Choices that fit: {', '.join(fits)}"
    )


# ---- the call


def takes(pipeline: Any, name: str) -> bool:
    """Whether the pipeline's ``__call__`` names the parameter ``name`` (a ``**kwargs`` of
    it takes anything and uses little: it does not count)."""
    parameter = inspect.signature(pipeline.__call__).parameters.get(name)
    return parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD


def accepted(pipeline: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` less those the pipeline's ``__call__`` does not take."""
    return {key: value for key, value in kwargs.items() if takes(pipeline, key)}
