"""Text-to-image generation with diffusers: load a pipeline once, make a prompt's images.

The demo model, a local diffusers folder and a Hugging Face Hub id all load
through ``load_pipeline`` and ``DiffusionPipeline.from_pretrained`` (the class the
folder's ``model_index.json`` names), so the default exercises exactly the path a real
checkpoint takes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sdcnn.core.errors import StepError
from sdcnn.core.progress import log_progress_bar
from sdcnn.generate import families
from sdcnn.generate.families import CUDA_DTYPES, SCHEDULERS, ModelLayout
from sdcnn.generate.model_source import ModelSource, check_model_available, hub_error, native_size

log = logging.getLogger(__name__)

OFFLOAD = ("none", "model", "sequential")  # generation.offload
VAE_TILING_AUTO_PIXELS = 2048 * 2048  # generation.vae_tiling auto: on above this many pixels


@dataclass(frozen=True)
class GenerationSettings:
    """Every key of the config's ``generation`` that decides an image's pixels.

    The one definition of them: the generate rule's params are ``asdict`` of this,
    and an image's key in the image store holds all of them (``image_key``), so a
    setting can be neither tracked by Snakemake but missing from the store key, nor
    the reverse.  (``gpu`` is not here: it is a resource, and the device an image
    was made on is in the key as the device actually used.)
    """

    # the defaults are config/schema.yaml's (tests/unit/project/test_notebook_use.py checks)
    steps: int = 25
    guidance_scale: float = 7.5
    height: int | None = None  # None: the model's native size (resolved before anything is made)
    width: int | None = None
    scheduler: str = "default"  # the model's own
    base_seed: int = 1234  # the seeds of the images derive from it (sdcnn.core.seeds)
    threads: int = 1  # torch threads: 1 vs 2 changes a few pixels
    precision: str = "auto"  # the dtype on CUDA
    batch_size: int = 1  # images per pipeline call
    compile: bool = False  # torch.compile the denoiser
    true_cfg_scale: float = 1.0  # FLUX.1's true classifier-free guidance (> 1 with a negative)
    vae_tiling: str = "auto"  # decode in tiles: auto (above a size), always, never
    # on a GPU: weights in CPU memory until used; diffusers' own tests allow the results
    # to differ (max 2e-4 and more), so it is a setting of the image
    offload: str = "none"

    @classmethod
    def from_config(cls, generation: dict[str, Any]) -> GenerationSettings:
        return cls(**{field.name: generation[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class PromptSpec:
    prompt_id: str
    text: str
    negative_prompt: str
    n_images: int


def resolve_size(settings: GenerationSettings, model: ModelSource) -> GenerationSettings:
    """``settings`` with a null height or width replaced by the model's native size."""
    if settings.height is not None and settings.width is not None:
        return settings
    side = native_size(model)
    if side is None:
        raise StepError(
            f"generation.height/width are null (the model's native size), but the native size "
            f"of {model.name!r} cannot be read from its configs (model_index.json, the "
            "transformer or unet and the vae); set generation.height and generation.width"
        )
    log.info("the model's native size: %d x %d", side, side)
    return dataclasses.replace(
        settings, height=settings.height or side, width=settings.width or side
    )


def check_native_size(pipeline: Any, side: int, model: ModelSource) -> None:
    """The loaded pipeline's own default size is ``side``, the one read from the configs
    before loading (it is in every image's store key)."""
    loaded = families.loaded_native_side(pipeline)
    if loaded is not None and loaded != side:
        raise StepError(
            f"the native size of {model.name!r} read from its configs ({side}) differs from "
            f"the loaded {type(pipeline).__name__}'s default ({loaded}); set "
            "generation.height and generation.width"
        )


def dtype_name(precision: str, device: str, class_name: str | None = None) -> str:
    """The torch dtype name the pipeline of class ``class_name`` runs in for
    ``generation.precision``.  On CUDA the configured one, where ``auto`` is bfloat16 for
    the families published in it and float16 for the others; float32 elsewhere (half
    precision on the CPU is slow or unsupported for some operations)."""
    if precision not in CUDA_DTYPES:
        raise StepError(f"generation.precision {precision!r} is not one of {sorted(CUDA_DTYPES)}")
    if device != "cuda":
        return "float32"
    if precision == "auto" and families.prefers_bf16(class_name):
        return "bfloat16"
    return CUDA_DTYPES[precision]


def check_scheduler(
    choice: str, scheduler_class: str | None, config: Any, pipeline_class: type | None
) -> None:
    """``generation.scheduler`` fits the model whose shipped scheduler is ``scheduler_class``
    with ``config`` (flow-matching or ε/v); a ``StepError`` naming the choices that fit."""
    problem = families.scheduler_problem(
        choice, scheduler_class, dict(config), sigmas=families.passes_sigmas(pipeline_class)
    )
    if problem is not None:
        raise StepError(problem)


def check_scheduler_of_layout(choice: str, layout: ModelLayout | None) -> None:
    """``check_scheduler`` from a folder's configs, before anything loads."""
    if choice == "default" or layout is None or layout.scheduler_class is None:
        return
    import diffusers

    pipeline_class = getattr(diffusers, layout.class_name, None)
    check_scheduler(choice, layout.scheduler_class, layout.scheduler, pipeline_class)


def swap_scheduler(pipeline: Any, choice: str) -> None:
    """Give the pipeline the scheduler ``choice`` names, on its shipped scheduler's config,
    once it is known to fit."""
    if choice == "default":
        return
    import diffusers

    shipped = pipeline.scheduler
    check_scheduler(choice, type(shipped).__name__, shipped.config, type(pipeline))
    scheduler_class = getattr(diffusers, SCHEDULERS[choice])
    pipeline.scheduler = scheduler_class.from_config(shipped.config)


def load_pipeline(
    model: ModelSource,
    *,
    device: str,
    dtype: Any,
    scheduler: str,
    allow_download: bool,
    offload: str = "none",
) -> Any:
    """Load a text-to-image pipeline once; swap in the configured scheduler (checked against
    the model's before loading where its folder is readable, and after)."""
    unreachable = check_model_available(model, allow_download=allow_download)
    from sdcnn.generate.model_source import model_layout

    check_scheduler_of_layout(scheduler, model_layout(model))
    # DiffusionPipeline loads the class model_index.json names, importing only that
    # pipeline's modules: less import time per generate job than AutoPipelineForText2Image,
    # whose import pulls in every pipeline diffusers has (the same class, the same images;
    # benchmarks/RESULTS.md §4)
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    online = model.kind == "hub" and allow_download
    started = time.perf_counter()
    try:
        pipeline = as_text_to_image(
            DiffusionPipeline.from_pretrained(
                model.location,
                dtype=dtype,
                local_files_only=not online or unreachable is not None,
            )
        )
    except (OSError, ValueError) as error:
        if model.kind == "hub":
            raise hub_error(
                model, error, allow_download=allow_download, unreachable=unreachable
            ) from error
        raise StepError(f"could not load the pipeline in {model.location!r}: {error}") from error
    tokenizer = getattr(pipeline, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) <= 2:
        raise StepError(f"the tokenizer of {model.name!r} is empty: the model folder is incomplete")
    swap_scheduler(pipeline, scheduler)
    pipeline.set_progress_bar_config(**log_progress_bar("denoising"))  # into the rule's log
    log.info(
        "loaded %s (%s) from %s in %.2f s",
        type(pipeline).__name__,
        model.kind,
        model.name,
        time.perf_counter() - started,
    )
    return place_on_device(pipeline, device, offload)


def place_on_device(pipeline: Any, device: str, offload: str = "none") -> Any:
    """The pipeline on ``device``; on CUDA with ``generation.offload`` ``model`` or
    ``sequential``, kept on the CPU and moved to the GPU a model (or a layer) at a time."""
    if offload not in OFFLOAD:
        raise StepError(f"generation.offload {offload!r} is not one of {list(OFFLOAD)}")
    if offload == "none":
        return pipeline.to(device)
    if device != "cuda":
        log.info("generation.offload %s applies on a GPU only: not on the %s", offload, device)
        return pipeline.to(device)
    if offload == "model":
        pipeline.enable_model_cpu_offload()
    else:
        pipeline.enable_sequential_cpu_offload()
    log.info("generation.offload %s: the pipeline's weights stay on the CPU until used", offload)
    return pipeline


def needs_an_image(pipeline: Any) -> bool:
    """Whether the pipeline's call takes an input image (img2img, inpainting, ...): a
    text-to-image pipeline's has no ``image`` parameter."""
    import inspect

    parameters = inspect.signature(pipeline.__call__).parameters
    return "image" in parameters or "prompt" not in parameters


def as_text_to_image(pipeline: Any) -> Any:
    """``pipeline`` itself when it draws from text alone; else its text-to-image sibling
    on the same components (as ``AutoPipelineForText2Image`` would have loaded it)."""
    if not needs_an_image(pipeline):
        return pipeline
    from diffusers import AutoPipelineForText2Image

    return AutoPipelineForText2Image.from_pipe(pipeline)


@dataclass(frozen=True)
class Generated:
    """One image and its safety checker's verdict: True when the checker flagged it (the
    pipeline then returns a black image in its place), False when it passed, None when
    the pipeline has no checker."""

    image: Any
    flagged: bool | None
    made_on: dict[str, Any] | None = None  # the kernel environment; None: made here, now


def call_arguments(
    pipeline: Any, prompt: PromptSpec, n_images: int, settings: GenerationSettings
) -> dict[str, Any]:
    """The keyword arguments of one pipeline call, less the generators: only those its
    ``__call__`` takes; an empty negative prompt is left out (the pipeline's default)."""
    arguments: dict[str, Any] = {"prompt": [prompt.text] * n_images}
    if prompt.negative_prompt:
        if not families.takes(pipeline, "negative_prompt"):
            raise StepError(
                f"prompt {prompt.prompt_id!r} has a negative_prompt, but "
                f"{type(pipeline).__name__} takes none; leave its negative_prompt empty"
            )
        arguments["negative_prompt"] = [prompt.negative_prompt] * n_images
        if families.takes(pipeline, "true_cfg_scale") and settings.true_cfg_scale <= 1:
            log.warning(
                "%s: %s uses a negative prompt only with generation.true_cfg_scale > 1",
                prompt.prompt_id,
                type(pipeline).__name__,
            )
    return families.accepted(
        pipeline,
        {
            **arguments,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance_scale,
            "true_cfg_scale": settings.true_cfg_scale,
            "height": settings.height,
            "width": settings.width,
        },
    )


def run_pipeline(
    pipeline: Any, prompt: PromptSpec, seeds: Sequence[int], settings: GenerationSettings
) -> list[Generated]:
    """One pipeline call for the images of ``seeds``, in order, with their verdicts.

    Each image has a generator of its own, so its starting noise depends on its
    seed alone, whatever else is in the call.
    """
    import torch

    result = pipeline(
        **call_arguments(pipeline, prompt, len(seeds), settings),
        generator=[torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
        output_type="pil",
    )
    verdicts = getattr(result, "nsfw_content_detected", None) or [None] * len(seeds)
    return [
        Generated(image, None if verdict is None else bool(verdict))
        for image, verdict in zip(result.images, verdicts, strict=True)
    ]


def generate_images(
    pipeline: Any, prompt: PromptSpec, seeds: Sequence[int], settings: GenerationSettings
) -> list[Any]:
    """The PIL images of one pipeline call (``run_pipeline`` without the verdicts)."""
    return [generated.image for generated in run_pipeline(pipeline, prompt, seeds, settings)]


def batches(n_images: int, batch_size: int) -> list[range]:
    """Consecutive image indices per pipeline call: the same for a given n and batch size."""
    return [
        range(start, min(start + batch_size, n_images)) for start in range(0, n_images, batch_size)
    ]


def prepare_for_device(
    pipeline: Any, device: str, compile_denoiser: bool, vae_tiling: bool = False
) -> Any:
    """Channels-last memory for the convolutional modules on CUDA (a UNet, the VAE; not a
    transformer), the denoiser compiled if asked, the VAE decoding in tiles if asked."""
    import torch

    key = families.denoiser_key(pipeline)
    if device == "cuda":
        for module in (getattr(pipeline, key), getattr(pipeline, "vae", None)):
            if module is not None and families.is_convolutional(module):
                module.to(memory_format=torch.channels_last)
    if compile_denoiser:
        setattr(pipeline, key, torch.compile(getattr(pipeline, key)))
    if vae_tiling:
        enable_tiling = getattr(getattr(pipeline, "vae", None), "enable_tiling", None)
        if enable_tiling is None:
            raise StepError(
                f"generation.vae_tiling: the VAE of {type(pipeline).__name__} cannot decode in "
                "tiles; set generation.vae_tiling: never"
            )
        enable_tiling()
        log.info("the VAE decodes in tiles")
    return pipeline


def vae_tiling_on(settings: GenerationSettings) -> bool:
    """Whether the VAE decodes in tiles: ``generation.vae_tiling``, where ``auto`` is on
    above ``VAE_TILING_AUTO_PIXELS`` pixels (the size must be resolved)."""
    if settings.vae_tiling == "auto":
        return (settings.height or 0) * (settings.width or 0) > VAE_TILING_AUTO_PIXELS
    return settings.vae_tiling == "always"


def generation_runtime(device: str, dtype: Any) -> dict[str, Any]:
    """The parts of the environment that can change pixels (threads are a setting)."""
    from sdcnn.core.device import device_name
    from sdcnn.core.provenance import package_versions

    return {
        "device": device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "memory_format": "channels_last" if device == "cuda" else "contiguous",
        "versions": package_versions(GENERATION_LIBRARIES),
    }


GENERATION_LIBRARIES = ("torch", "diffusers", "transformers")  # in every image's key


def planned_runtime(
    *,
    gpus: int,
    precision: str,
    versions: Mapping[str, str | None],
    model_class: str | None = None,
) -> dict[str, Any]:
    """What the generate jobs will run with, as the workflow plans them: the device (a
    GPU when the job asks for one), the dtype it implies for the model's pipeline class
    (``model_class``, from its model_index.json; None: not known before loading), the
    libraries' versions.

    A params value of generate and of the training plan: the pixels depend on all three
    (fp16 on a GPU, other kernels, other library code), as the image store's keys say,
    so a change re-generates and re-trains, in one run. (Which CPU or GPU model a job
    lands on is not planned: ``docs/reproducibility.md`` bounds what it changes.)
    """
    device = "cuda" if gpus > 0 else "cpu"
    return {
        "device": device,
        "dtype": dtype_name(precision, device, model_class),
        "versions": dict(versions),
    }


def generation_dtype(precision: str, device: str, class_name: str | None = None) -> Any:
    """The torch dtype of the pipeline: ``dtype_name``'s (bf16 only where supported), with
    a warning where ``precision`` does not apply."""
    import torch

    name = dtype_name(precision, device, class_name)
    if device != "cuda" and precision not in ("auto", "fp32"):
        log.warning(
            "generation.precision %s applies on a GPU only: float32 on the %s", precision, device
        )
    if name == "bfloat16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU does not support bfloat16: running in float16")
        name = "float16"
    log.info("diffusion pipeline in %s on %s", name, device)
    return getattr(torch, name)
