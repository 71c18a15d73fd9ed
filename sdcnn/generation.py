"""Text-to-image generation with diffusers: load a pipeline once, make a prompt's images.

The demo model, a local diffusers folder and a Hugging Face Hub id all load
through ``load_pipeline`` and ``DiffusionPipeline.from_pretrained`` (the class the
folder's ``model_index.json`` names), so the default exercises exactly the path a real
checkpoint takes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sdcnn import safety
from sdcnn.fileio import atomic_directory
from sdcnn.imagestore import ImageStore
from sdcnn.kernels import MADE_ON_TEXT_KEY
from sdcnn.layout import ShardLayout
from sdcnn.naming import image_id
from sdcnn.progress import log_progress_bar
from sdcnn.provenance import canonical_json
from sdcnn.step import StepError

log = logging.getLogger(__name__)

DEMO = "demo"
# The offline default: a tiny Stable Diffusion pipeline trained by the project on pictures
# of coloured shapes (sdcnn/demo_training.py), shipped with the package, loaded like any
# checkpoint folder.
DEMO_PIPELINE_DIR = Path(__file__).resolve().parent / "assets" / "demo-pipeline"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
HUB_PROBE_TIMEOUT_S = 5.0  # one request, no retries, before going online

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
class ModelSource:
    """Where a pipeline comes from: ``kind`` is ``demo``, ``local`` or ``hub``."""

    kind: str
    location: str  # a folder for demo and local, a repository id for hub
    name: str  # the config's value, recorded in every PNG


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
    base_seed: int  # the seeds of the images derive from it (sdcnn.seeds)
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


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def resolve_model_source(source: str, demo_dir: str | Path = DEMO_PIPELINE_DIR) -> ModelSource:
    """Classify the config's ``model.source``: ``demo``, a local folder, or a Hub id."""
    if source == DEMO:
        return ModelSource(DEMO, str(demo_dir), DEMO)
    if looks_like_path(source):
        return ModelSource("local", str(Path(source).expanduser()), source)
    if HUB_ID.match(source):
        return ModelSource("hub", source, source)
    raise StepError(
        f"model.source {source!r} is neither 'demo', an existing local folder, "
        "nor a Hugging Face id of the form 'organisation/name' "
        "(write a local folder as ./path or /path)"
    )


def _download_advice(folder: str) -> str:
    return (
        f"download a pipeline with 'hf download <organisation/name> --local-dir {folder}' "
        "on a machine with network access, or set model.source: demo"
    )


def check_local_pipeline(folder: str) -> None:
    """A local model folder exists and holds a complete diffusers pipeline.

    Complete means: ``model_index.json`` is a JSON object and every component it
    lists (``unet``, ``vae``, ``text_encoder``, ...) has a non-empty folder.
    """
    path = Path(folder)
    if not path.exists():
        raise StepError(
            f"model folder {folder!r} does not exist (relative to {Path.cwd()}); "
            + _download_advice(folder)
        )
    if not path.is_dir():
        raise StepError(
            f"model.source {folder!r} is a file; point it at the folder that holds "
            "model_index.json (a diffusers pipeline saved with save_pretrained)"
        )
    index_path = path / "model_index.json"
    if not index_path.is_file():
        inside = sorted(str(index.parent) for index in path.glob("*/model_index.json"))
        hint = f"; did you mean {inside[0]!r}?" if inside else ""
        raise StepError(
            f"model folder {folder!r} is not a diffusers pipeline (it has no model_index.json)"
            f"{hint}; save one with pipeline.save_pretrained(folder) or " + _download_advice(folder)
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise StepError(f"{index_path} is not valid JSON ({error}); download it again") from None
    if not isinstance(index, dict):
        raise StepError(f"{index_path} is not a JSON object; download the pipeline again")
    components = [
        name
        for name, entry in index.items()
        if not name.startswith("_") and isinstance(entry, list) and None not in entry
    ]
    missing = [
        name
        for name in components
        if not (path / name).is_dir() or not any((path / name).iterdir())
    ]
    if missing:
        raise StepError(
            f"model folder {folder!r} is incomplete: model_index.json lists "
            f"{', '.join(missing)}, but their folders are missing or empty; "
            + _download_advice(folder)
        )


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_unreachable_reason(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Ask the Hub about ``repo_id`` once, without retries: ``None`` when it answers, else why not.

    ``from_pretrained`` retries a failed connection for about 25 s; this one
    request tells in a fraction of that whether to go online at all.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except HfHubHTTPError:
        return None  # the Hub answered (not found, gated, ...): from_pretrained says what
    except Exception as error:  # DNS, refused, timeout, proxy: all mean "offline" here
        return f"{type(error).__name__}: {error}"
    return None


def check_model_available(model: ModelSource, *, allow_download: bool) -> str | None:
    """Fail at once, before diffusers is imported, for a model that cannot load.

    A local folder must be a complete pipeline.  A Hub id must be in the local
    cache unless downloads are allowed; then the Hub is asked once, and when it
    cannot be reached the cache must hold the model.  Returns why the Hub is
    unreachable (``None`` when it is reachable or not needed).
    """
    if model.kind != "hub":
        check_local_pipeline(model.location)
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(model.location, "model_index.json"), str)
    unreachable = hub_unreachable_reason(model.location) if allow_download else None
    if not cached and (not allow_download or unreachable is not None):
        missing = FileNotFoundError(f"{model.location}: model_index.json is not in the cache")
        raise _hub_error(model, missing, allow_download=allow_download, unreachable=unreachable)
    return unreachable


def _hub_error(
    model: ModelSource,
    error: Exception,
    *,
    allow_download: bool = False,
    unreachable: str | None = None,
) -> StepError:
    """An actionable message for a Hub id that could not be loaded."""
    text = str(error).strip()
    cause = f"{type(error).__name__}: {text.splitlines()[0] if text else 'no details'}"
    local_dir = f"./models/{model.location}"
    fix = (
        f"download it once with 'hf download {model.location} --local-dir {local_dir}' on a "
        f"machine with network access and set model.source: {local_dir}"
    )
    if not allow_download:
        problem = (
            f"model.source {model.name!r} is not (completely) in the local Hugging Face cache "
            f"{_hub_cache()} ({cause}) and downloads are off (model.allow_download: false). "
            f"To fix: {fix}; or set model.allow_download: true on a machine that can reach the Hub"
        )
    elif unreachable is not None:
        problem = (
            f"model.source {model.name!r}: the Hugging Face Hub cannot be reached ({unreachable}) "
            f"and the model is not (completely) in the local cache {_hub_cache()}. "
            f"Check the network (or HF_ENDPOINT and the proxy settings), or {fix}"
        )
    else:
        problem = (
            f"model.source {model.name!r} could not be loaded from the Hugging Face Hub "
            f"({cause}). Check the id at https://huggingface.co/{model.location}; for a gated "
            "model accept its licence there and log in with 'hf auth login'"
        )
    if Path(model.location.split("/")[0]).is_dir():
        problem += (
            f". If you meant a local folder: {model.location!r} does not exist under {Path.cwd()}"
        )
    return StepError(problem)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_folder(model: ModelSource) -> Path | None:
    """The local folder of a model: itself, or a Hub model's cached snapshot."""
    if model.kind != "hub":
        return Path(model.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model.location, local_files_only=True))
    except Exception:  # noqa: BLE001 (not cached: the size is known once it is loaded)
        return None


def native_size(model: ModelSource) -> int | None:
    """The image side a pipeline was made for, from its configs alone (nothing loaded):
    the UNet's ``sample_size`` times the VAE's down-sampling, 2 ** (blocks - 1)."""
    folder = model_folder(model)
    if folder is None:
        return None
    unet = _read_json(folder / "unet" / "config.json")
    vae = _read_json(folder / "vae" / "config.json")
    if not unet or not vae or not isinstance(unet.get("sample_size"), int):
        return None
    blocks = len(vae.get("block_out_channels", [0] * 4))
    return unet["sample_size"] * 2 ** (blocks - 1)


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
    # pipeline's modules: 1.3 s less per generate job than AutoPipelineForText2Image,
    # whose import pulls in every pipeline diffusers has (the same class, the same images)
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
            raise _hub_error(
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


def png_text(
    prompt: PromptSpec,
    index: int,
    seed: int,
    settings: GenerationSettings,
    model: ModelSource,
    made_on: dict[str, Any],
) -> dict[str, str]:
    """The text chunks stored in each PNG: enough to make the same image again, and the
    kernel environment it was made with (``made_on``, JSON: where the same bytes come
    from again)."""
    fields = {
        "prompt_id": prompt.prompt_id,
        "image_index": index,
        "prompt": prompt.text,
        "negative_prompt": prompt.negative_prompt,
        "seed": seed,
        "model": model.name,
        **asdict(settings),
    }
    text = {key: str(value) for key, value in fields.items()}
    text[MADE_ON_TEXT_KEY] = canonical_json(made_on)
    return text


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


def save_png(image: Any, path: Path, text: dict[str, str]) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    image.save(path, format="PNG", pnginfo=info)


def hub_snapshot_commit(repo_id: str) -> str | None:
    """The commit of the locally cached snapshot of a Hub model, if there is one."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True)).name
    except Exception:  # noqa: BLE001 (not cached, or a broken cache: no identity, no store)
        return None


def model_identity(model: ModelSource, hash_cache: Path | None) -> str | None:
    """What the model *is*: a content hash of its folder, or a Hub repository at a commit."""
    if model.kind == "hub":
        commit = hub_snapshot_commit(model.location)
        return f"hub:{model.location}@{commit}" if commit else None
    from sdcnn.imagestore import folder_fingerprint

    return "sha256:" + folder_fingerprint(Path(model.location), hash_cache)


def image_key(
    *,
    model_id: str,
    prompt: PromptSpec,
    seed: int,
    settings: GenerationSettings,
    runtime: dict[str, Any],
    call_seeds: Sequence[int],
) -> dict[str, Any]:
    """Everything that decides an image's pixels (see ``sdcnn.imagestore``): the model,
    the prompt's text and negative prompt, the seed, every generation setting, and the
    seeds of the pipeline call that makes it (the batch's shape can change the numerics).
    Not the prompt's id or its number of images: they decide which images there are,
    not what one of them looks like."""
    from sdcnn.imagestore import STORE_FORMAT

    return {
        "store_format": STORE_FORMAT,
        "model": model_id,
        "prompt": prompt.text,
        "negative_prompt": prompt.negative_prompt,
        "seed": seed,
        "call_seeds": list(call_seeds),
        **asdict(settings),
        **runtime,
    }


def generation_runtime(device: str, dtype: Any) -> dict[str, Any]:
    """The parts of the environment that can change pixels (threads are a setting)."""
    from sdcnn.device import device_name
    from sdcnn.provenance import package_versions

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


@dataclass
class ShardGenerator:
    """Makes the images of a shard's prompts with at most one pipeline load.

    The pipeline is loaded the first time an image is missing from the store, so a
    shard whose every image is in the store loads none.
    """

    settings: GenerationSettings
    model: ModelSource
    allow_download: bool
    device: str
    dtype: Any
    store: ImageStore | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"reused": 0, "generated": 0})
    flagged: list[str] = field(default_factory=list)  # image ids the safety checker flagged

    def __post_init__(self) -> None:
        from sdcnn.kernels import kernel_environment

        self.runtime = generation_runtime(self.device, self.dtype)
        self.kernels = kernel_environment(self.device)
        self.model_id = (
            None
            if self.store is None
            else model_identity(self.model, self.store.root / "file-hashes.json")
        )

    @functools.cached_property
    def pipeline(self) -> Any:
        pipeline = load_pipeline(
            self.model,
            device=self.device,
            dtype=self.dtype,
            scheduler=self.settings.scheduler,
            allow_download=self.allow_download,
        )
        return prepare_for_device(pipeline, self.device, self.settings.compile)

    def calls(self, prompt: PromptSpec) -> list[tuple[range, list[int]]]:
        """The pipeline calls that make a prompt's images: (image indices, their seeds)."""
        from sdcnn.seeds import image_seeds

        seeds = image_seeds(self.settings.base_seed, prompt.prompt_id, prompt.n_images)
        return [
            (indices, [seeds[index] for index in indices])
            for indices in batches(len(seeds), self.settings.batch_size)
        ]

    def prompt_image_keys(self, prompt: PromptSpec) -> list[dict[str, Any] | None]:
        """The store key of every image of ``prompt``, in image order."""
        return [
            key for _, seeds in self.calls(prompt) for key in self.call_image_keys(prompt, seeds)
        ]

    def call_image_keys(
        self, prompt: PromptSpec, call_seeds: Sequence[int]
    ) -> list[dict[str, Any] | None]:
        """The store key of each image of one pipeline call (its seeds ``call_seeds``);
        None each without a store."""
        if self.store is None or self.model_id is None:
            return [None] * len(call_seeds)
        runtime = self.runtime
        if not self.store.across_machines:  # only what these kernels compute is reused
            runtime = {**runtime, "kernels": self.kernels}
        return [
            image_key(
                model_id=self.model_id,
                prompt=prompt,
                seed=seed,
                settings=self.settings,
                runtime=runtime,
                call_seeds=call_seeds,
            )
            for seed in call_seeds
        ]

    def batch(
        self, prompt: PromptSpec, call_seeds: Sequence[int], what: str
    ) -> list[Generated]:
        """The images of one pipeline call: from the store when all are there, else made."""
        keys = self.call_image_keys(prompt, call_seeds)
        stored = [self.store.get_entry(key) if self.store and key else None for key in keys]
        if all(entry is not None for entry in stored):
            self.counts["reused"] += len(stored)
            log.info("%s reused from the image store", what)
            return [Generated(entry.image, entry.flagged, entry.made_on) for entry in stored]
        pipeline = self.pipeline  # loaded here the first time (not part of the timing)
        started = time.perf_counter()
        made = run_pipeline(pipeline, prompt, call_seeds, self.settings)
        self.counts["generated"] += len(made)
        log.info("%s generated in %.2f s", what, time.perf_counter() - started)
        for key, generated in zip(keys, made, strict=True):
            if self.store is not None and key:
                self.store.put(
                    key, generated.image, flagged=generated.flagged, made_on=self.kernels
                )
        return made

    def prompt_images(self, prompt: PromptSpec, folder: Path) -> dict[str, int]:
        """A prompt's PNGs in ``folder``, ``settings.batch_size`` consecutive images a call;
        each new batch goes into the store as soon as it exists, so a killed run loses at
        most the batch in progress.  Returns the prompt's reused and generated counts;
        images the safety checker flagged are added to ``self.flagged``."""
        before = dict(self.counts)
        for indices, call_seeds in self.calls(prompt):
            what = f"{prompt.prompt_id}: image {indices.start + 1}"
            what += f"-{indices.stop}" if len(indices) > 1 else ""
            what += f"/{prompt.n_images}"
            made = self.batch(prompt, call_seeds, what)
            for index, seed, generated in zip(indices, call_seeds, made, strict=True):
                stem = image_id(prompt.prompt_id, index)
                made_on = generated.made_on or self.kernels
                text = png_text(prompt, index, seed, self.settings, self.model, made_on)
                text[safety.TEXT_KEY] = safety.VERDICT_TEXT[generated.flagged]
                save_png(generated.image, folder / f"{stem}.png", text)
                if generated.flagged:
                    self.flagged.append(stem)
                    log.warning(
                        "%s was flagged by the model's safety checker: the pipeline replaced "
                        "it with a black image", stem
                    )  # fmt: skip
        counts = {kind: self.counts[kind] - before[kind] for kind in self.counts}
        log.info(
            "%s: %d images, %d reused from the image store, %d generated",
            prompt.prompt_id, prompt.n_images, counts["reused"], counts["generated"],
        )  # fmt: skip
        return counts


@dataclass(frozen=True)
class ShardResult:
    counts: dict[str, int]  # images "reused" from the store and "generated"
    flagged: list[str]  # ids of the images the safety checker flagged (now black)


def generation_dtype(precision: str, device: str) -> Any:
    """The torch dtype of the pipeline: ``precision`` on CUDA (bf16 only where supported)."""
    import torch

    dtype_name = diffusion_dtype(precision, device)
    if dtype_name == "bfloat16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU does not support bfloat16: running in float16")
        dtype_name = "float16"
    log.info("diffusion pipeline in %s on %s", dtype_name, device)
    return getattr(torch, dtype_name)


def generate_shard(
    *,
    output_dir: str | Path,
    prompts: Sequence[PromptSpec],
    layout: ShardLayout,
    settings: GenerationSettings,
    model: ModelSource,
    allow_download: bool,
    gpus: int,
    gpu_fallback: str = "fail",
    store: ImageStore | None = None,
) -> ShardResult:
    """The generate step for one shard: every prompt's images, with one pipeline load
    at most (none when the store holds every image).  ``output_dir`` appears, with each
    prompt's folder in it (``layout``), only once every image is written.  Returns the
    shard's counts of reused and generated images, and the ids of the images the model's
    safety checker flagged."""
    import torch

    from sdcnn.device import select_device

    torch.set_num_threads(settings.threads)
    device = select_device(gpus, gpu_fallback)
    settings = resolve_size(settings, model)
    generator = ShardGenerator(
        settings=settings,
        model=model,
        allow_download=allow_download,
        device=device,
        dtype=generation_dtype(settings.precision, device),
        store=store,
    )
    with atomic_directory(output_dir) as tmp:
        for prompt in prompts:
            folder = layout.folder(tmp, prompt.prompt_id)
            folder.mkdir(exist_ok=True)
            generator.prompt_images(prompt, folder)
    counts = generator.counts
    if generator.flagged:
        log.warning(
            "%d image(s) flagged by the safety checker, now black: %s",
            len(generator.flagged), ", ".join(generator.flagged),
        )  # fmt: skip
    log.info(
        "%d prompts, %d images: %d reused from the image store, %d generated (%s)",
        len(prompts), sum(counts.values()), counts["reused"], counts["generated"],
        "pipeline loaded once" if "pipeline" in generator.__dict__ else "pipeline not loaded",
    )  # fmt: skip
    return ShardResult(dict(counts), list(generator.flagged))
