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
from sdcnn.generate.model_source import ModelSource, check_model_available, hub_error, native_size

log = logging.getLogger(__name__)


# config name -> diffusers class; "default" keeps the checkpoint's own scheduler
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


# generation.precision -> torch dtype on CUDA; "auto" is fp16, the usual choice for diffusion
CUDA_DTYPES = {"auto": "float16", "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


@dataclass(frozen=True)
class GenerationSettings:
    """Every key of the config's ``generation`` that decides an image's pixels.

    The one definition of them: the generate rule's params are ``asdict`` of this,
    and an image's key in the image store holds all of them (``image_key``), so a
    setting can be neither tracked by Snakemake but missing from the store key, nor
    the reverse.  (``gpu`` is not here: it is a resource, and the device an image
    was made on is in the key as the device actually used.)
    """

    steps: int
    guidance_scale: float
    height: int | None  # None: the model's native size (resolved before anything is made)
    width: int | None
    scheduler: str
    base_seed: int  # the seeds of the images derive from it (sdcnn.core.seeds)
    threads: int  # torch threads: 1 vs 2 changes a few pixels
    precision: str  # the dtype on CUDA
    batch_size: int = 1  # images per pipeline call
    compile: bool = False  # torch.compile the UNet

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
            f"generation.height/width are null (the model's native size), but the size of "
            f"{model.name!r} cannot be read from its unet/vae configs; set them in the config"
        )
    log.info("the model's native size: %d x %d", side, side)
    return dataclasses.replace(
        settings, height=settings.height or side, width=settings.width or side
    )


def diffusion_dtype(precision: str, device: str) -> str:
    """The torch dtype name the pipeline runs in: the configured one on CUDA, float32 elsewhere.

    Half precision on the CPU is slow or unsupported for some operations, so the CPU
    always runs in float32 whatever ``precision`` says.
    """
    if precision not in CUDA_DTYPES:
        raise StepError(f"generation.precision {precision!r} is not one of {sorted(CUDA_DTYPES)}")
    if device == "cuda":
        return CUDA_DTYPES[precision]
    if precision not in ("auto", "fp32"):
        log.warning(
            "generation.precision %s applies on a GPU only: float32 on the %s", precision, device
        )
    return "float32"


def load_pipeline(
    model: ModelSource, *, device: str, dtype: Any, scheduler: str, allow_download: bool
) -> Any:
    """Load a text-to-image pipeline once; swap in the configured scheduler."""
    unreachable = check_model_available(model, allow_download=allow_download)
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
    if scheduler != "default":
        import diffusers

        scheduler_class = getattr(diffusers, SCHEDULERS[scheduler])
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(**log_progress_bar("denoising"))  # into the rule's log
    log.info(
        "loaded %s (%s) from %s in %.2f s",
        type(pipeline).__name__,
        model.kind,
        model.name,
        time.perf_counter() - started,
    )
    return pipeline.to(device)


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


def run_pipeline(
    pipeline: Any, prompt: PromptSpec, seeds: Sequence[int], settings: GenerationSettings
) -> list[Generated]:
    """One pipeline call for the images of ``seeds``, in order, with their verdicts.

    Each image has a generator of its own, so its starting noise depends on its
    seed alone, whatever else is in the call.
    """
    import torch

    result = pipeline(
        prompt=[prompt.text] * len(seeds),
        negative_prompt=[prompt.negative_prompt] * len(seeds) if prompt.negative_prompt else None,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        height=settings.height,
        width=settings.width,
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


def prepare_for_device(pipeline: Any, device: str, compile_unet: bool) -> Any:
    """Channels-last convolutions on CUDA, and the UNet compiled if asked."""
    import torch

    if device == "cuda":
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        pipeline.unet = torch.compile(pipeline.unet)
    return pipeline


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
    *, gpus: int, precision: str, versions: Mapping[str, str | None]
) -> dict[str, Any]:
    """What the generate jobs will run with, as the workflow plans them: the device (a
    GPU when the job asks for one), the dtype it implies, the libraries' versions.

    A params value of generate and of the training plan: the pixels depend on all three
    (fp16 on a GPU, other kernels, other library code), as the image store's keys say,
    so a change re-generates and re-trains, in one run. (Which CPU or GPU model a job
    lands on is not planned: ``docs/reproducibility.md`` bounds what it changes.)
    """
    device = "cuda" if gpus > 0 else "cpu"
    return {
        "device": device,
        "dtype": CUDA_DTYPES[precision] if device == "cuda" else "float32",
        "versions": dict(versions),
    }


def generation_dtype(precision: str, device: str) -> Any:
    """The torch dtype of the pipeline: ``precision`` on CUDA (bf16 only where supported)."""
    import torch

    dtype_name = diffusion_dtype(precision, device)
    if dtype_name == "bfloat16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU does not support bfloat16: running in float16")
        dtype_name = "float16"
    log.info("diffusion pipeline in %s on %s", dtype_name, device)
    return getattr(torch, dtype_name)
