"""Text-to-image generation with diffusers: load a pipeline once, make a prompt's images.

The demo model, a local diffusers folder and a Hugging Face Hub id all load
through ``load_pipeline`` and ``AutoPipelineForText2Image.from_pretrained``, so
the default exercises exactly the path a real checkpoint takes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sdcnn.fileio import atomic_directory
from sdcnn.naming import image_id
from sdcnn.step import StepError

log = logging.getLogger(__name__)

DEMO = "demo"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

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


@dataclass(frozen=True)
class ModelSource:
    """Where a pipeline comes from: ``kind`` is ``demo``, ``local`` or ``hub``."""

    kind: str
    location: str  # a folder for demo and local, a repository id for hub
    name: str  # the config's value, recorded in every PNG


@dataclass(frozen=True)
class GenerationSettings:
    steps: int
    guidance_scale: float
    height: int
    width: int
    scheduler: str


@dataclass(frozen=True)
class PromptSpec:
    prompt_id: str
    text: str
    negative_prompt: str
    n_images: int


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def resolve_model_source(source: str, demo_dir: str) -> ModelSource:
    """Classify the config's ``model.source``: ``demo``, a local folder, or a Hub id."""
    if source == DEMO:
        return ModelSource(DEMO, demo_dir, DEMO)
    if looks_like_path(source):
        return ModelSource("local", str(Path(source).expanduser()), source)
    if HUB_ID.match(source):
        return ModelSource("hub", source, source)
    raise StepError(
        f"model.source {source!r} is neither 'demo', an existing local folder, "
        "nor a Hugging Face id of the form 'organisation/name'"
    )


def check_local_pipeline(folder: str) -> None:
    path = Path(folder)
    if not path.is_dir():
        raise StepError(f"model folder {folder!r} does not exist")
    if not (path / "model_index.json").is_file():
        raise StepError(
            f"model folder {folder!r} is not a diffusers pipeline (it has no model_index.json); "
            "save one with pipeline.save_pretrained(folder) or download it with "
            "'hf download <id> --local-dir <folder>'"
        )


def _hub_error(model: ModelSource, error: Exception) -> StepError:
    return StepError(
        f"model.source {model.name!r} is not available offline ({type(error).__name__}: {error}). "
        f"Download it once with 'hf download {model.location} --local-dir models/{model.location}' "
        f"and set model.source to that folder, or set model.allow_download: true on a machine "
        "that can reach the Hugging Face Hub"
    )


def load_pipeline(
    model: ModelSource, *, device: str, dtype: Any, scheduler: str, allow_download: bool
) -> Any:
    """Load a text-to-image pipeline once; swap in the configured scheduler."""
    from diffusers import AutoPipelineForText2Image
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    if model.kind != "hub":
        check_local_pipeline(model.location)
    started = time.perf_counter()
    try:
        pipeline = AutoPipelineForText2Image.from_pretrained(
            model.location,
            dtype=dtype,
            local_files_only=model.kind != "hub" or not allow_download,
        )
    except (OSError, ValueError) as error:
        if model.kind == "hub":
            raise _hub_error(model, error) from error
        raise StepError(f"could not load the pipeline in {model.location!r}: {error}") from error
    tokenizer = getattr(pipeline, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) <= 2:
        raise StepError(f"the tokenizer of {model.name!r} is empty: the model folder is incomplete")
    if scheduler != "default":
        import diffusers

        scheduler_class = getattr(diffusers, SCHEDULERS[scheduler])
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    log.info(
        "loaded %s (%s) from %s in %.2f s",
        type(pipeline).__name__,
        model.kind,
        model.name,
        time.perf_counter() - started,
    )
    return pipeline.to(device)


def png_text(
    prompt: PromptSpec, index: int, seed: int, settings: GenerationSettings, model: ModelSource
) -> dict[str, str]:
    """The text chunks stored in each PNG: enough to make the same image again."""
    fields = {
        "prompt_id": prompt.prompt_id,
        "image_index": index,
        "prompt": prompt.text,
        "negative_prompt": prompt.negative_prompt,
        "seed": seed,
        "model": model.name,
        **asdict(settings),
    }
    return {key: str(value) for key, value in fields.items()}


def generate_images(
    pipeline: Any,
    prompt: PromptSpec,
    seeds: Sequence[int],
    settings: GenerationSettings,
) -> Iterator[tuple[int, int, Any]]:
    """Yield (index, seed, PIL image), one pipeline call per image.

    One image per call keeps every image a function of its own seed alone: the
    same prompt id and index give the same pixels whatever ``n_images`` is.
    """
    import torch

    for index, seed in enumerate(seeds):
        started = time.perf_counter()
        generator = torch.Generator(device="cpu").manual_seed(seed)
        result = pipeline(
            prompt=prompt.text,
            negative_prompt=prompt.negative_prompt or None,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            height=settings.height,
            width=settings.width,
            generator=generator,
            output_type="pil",
        )
        log.info(
            "%s: image %d/%d (seed %d) in %.2f s",
            prompt.prompt_id,
            index + 1,
            len(seeds),
            seed,
            time.perf_counter() - started,
        )
        yield index, seed, result.images[0]


def save_png(image: Any, path: Path, text: dict[str, str]) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    image.save(path, format="PNG", pnginfo=info)


def write_prompt_images(
    output_dir: str | Path,
    pipeline: Any,
    prompt: PromptSpec,
    seeds: Sequence[int],
    settings: GenerationSettings,
    model: ModelSource,
) -> list[Path]:
    """Generate a prompt's images into ``output_dir`` (created atomically)."""
    if len(seeds) != prompt.n_images:
        raise StepError(f"{prompt.prompt_id}: {len(seeds)} seeds for {prompt.n_images} images")
    written = []
    with atomic_directory(output_dir) as tmp:
        for index, seed, image in generate_images(pipeline, prompt, seeds, settings):
            name = f"{image_id(prompt.prompt_id, index)}.png"
            save_png(image, tmp / name, png_text(prompt, index, seed, settings, model))
            written.append(Path(output_dir) / name)
    return written


def generate_prompt(
    *,
    output_dir: str,
    prompt: PromptSpec,
    seeds: Sequence[int],
    settings: GenerationSettings,
    model: ModelSource,
    allow_download: bool,
    gpus: int,
    threads: int,
) -> list[Path]:
    """The generate step for one prompt: one pipeline load, then its images."""
    import torch

    from sdcnn.device import select_device

    torch.set_num_threads(threads)
    device = select_device(gpus)
    pipeline = load_pipeline(
        model,
        device=device,
        dtype=torch.float32,
        scheduler=settings.scheduler,
        allow_download=allow_download,
    )
    return write_prompt_images(output_dir, pipeline, prompt, seeds, settings, model)
