"""One shard's images: each prompt's images generated in batches (or taken from the image
store), written as PNGs with the text chunks that say how they were made."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdcnn.core import png_text as keys
from sdcnn.core.fileio import atomic_directory
from sdcnn.core.naming import image_id
from sdcnn.core.provenance import canonical_json
from sdcnn.core.shards import ShardLayout
from sdcnn.generate import safety_checker
from sdcnn.generate.image_store import ImageStore
from sdcnn.generate.model_identity import content_identity
from sdcnn.generate.model_source import (
    ModelSource,
    model_layout,
    native_size,
    resolve_model_source,
)
from sdcnn.generate.pipeline import (
    Generated,
    GenerationSettings,
    PromptSpec,
    batches,
    check_native_size,
    generation_dtype,
    generation_runtime,
    load_pipeline,
    prepare_for_device,
    resolve_size,
    run_pipeline,
    vae_tiling_on,
)

log = logging.getLogger(__name__)


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
        keys.PROMPT_ID: prompt.prompt_id,
        keys.IMAGE_INDEX: index,
        keys.PROMPT: prompt.text,
        keys.NEGATIVE_PROMPT: prompt.negative_prompt,
        keys.SEED: seed,
        keys.MODEL: model.name,
        **asdict(settings),
    }
    text = {key: str(value) for key, value in fields.items()}
    text[keys.MADE_ON] = canonical_json(made_on)
    return text


def save_png(image: Any, path: Path, text: dict[str, str]) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    image.save(path, format="PNG", pnginfo=info)


def image_key(
    *,
    model_id: str,
    prompt: PromptSpec,
    seed: int,
    settings: GenerationSettings,
    runtime: dict[str, Any],
    call_seeds: Sequence[int],
) -> dict[str, Any]:
    """Everything that decides an image's pixels (see ``sdcnn.generate.image_store``): the model,
    the prompt's text and negative prompt, the seed, every generation setting, and the
    seeds of the pipeline call that makes it (the batch's shape can change the numerics).
    Not the prompt's id or its number of images: they decide which images there are,
    not what one of them looks like."""
    from sdcnn.generate.image_store import STORE_FORMAT

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
    native_side: int | None = None  # the side read from the configs, when the size is native
    counts: dict[str, int] = field(default_factory=lambda: {"reused": 0, "generated": 0})
    flagged: list[str] = field(default_factory=list)  # image ids the safety checker flagged

    def __post_init__(self) -> None:
        from sdcnn.core.kernels import kernel_environment

        self.runtime = generation_runtime(self.device, self.dtype)
        self.kernels = kernel_environment(self.device)
        self.model_id = (
            None
            if self.store is None
            else content_identity(self.model, self.store.root / "file-hashes.json")
        )

    @functools.cached_property
    def pipeline(self) -> Any:
        pipeline = load_pipeline(
            self.model,
            device=self.device,
            dtype=self.dtype,
            scheduler=self.settings.scheduler,
            allow_download=self.allow_download,
            offload=self.settings.offload,
        )
        if self.native_side is not None:
            check_native_size(pipeline, self.native_side, self.model)
        return prepare_for_device(
            pipeline, self.device, self.settings.compile, vae_tiling_on(self.settings)
        )

    def calls(self, prompt: PromptSpec) -> list[tuple[range, list[int]]]:
        """The pipeline calls that make a prompt's images: (image indices, their seeds)."""
        from sdcnn.core.seeds import image_seeds

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

    def batch(self, prompt: PromptSpec, call_seeds: Sequence[int], what: str) -> list[Generated]:
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
                text[keys.SAFETY_CHECKER] = safety_checker.VERDICT_TEXT[generated.flagged]
                save_png(generated.image, folder / f"{stem}.png", text)
                if generated.flagged:
                    self.flagged.append(stem)
                    log.warning(
                        "%s was flagged by the model's safety checker: the pipeline replaced "
                        "it with a black image",
                        stem,
                    )
        counts = {kind: self.counts[kind] - before[kind] for kind in self.counts}
        log.info(
            "%s: %d images, %d reused from the image store, %d generated",
            prompt.prompt_id,
            prompt.n_images,
            counts["reused"],
            counts["generated"],
        )
        return counts


@dataclass(frozen=True)
class ShardResult:
    counts: dict[str, int]  # images "reused" from the store and "generated"
    flagged: list[str]  # ids of the images the safety checker flagged (now black)


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

    from sdcnn.core.device import select_device

    torch.set_num_threads(settings.threads)
    device = select_device(gpus, gpu_fallback)
    native = settings.height is None or settings.width is None
    settings = resolve_size(settings, model)
    model_class = getattr(model_layout(model), "class_name", None)
    generator = ShardGenerator(
        settings=settings,
        model=model,
        allow_download=allow_download,
        device=device,
        dtype=generation_dtype(settings.precision, device, model_class),
        store=store,
        native_side=native_size(model) if native else None,
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
            len(generator.flagged),
            ", ".join(generator.flagged),
        )
    log.info(
        "%d prompts, %d images: %d reused from the image store, %d generated (%s)",
        len(prompts),
        sum(counts.values()),
        counts["reused"],
        counts["generated"],
        "pipeline loaded once" if "pipeline" in generator.__dict__ else "pipeline not loaded",
    )
    return ShardResult(dict(counts), list(generator.flagged))


def generate_prompt(
    text: str,
    output_dir: str | Path,
    *,
    n_images: int = 1,
    model: str = "demo",
    negative_prompt: str = "",
    prompt_id: str = "prompt",
    gpus: int = 0,
    allow_download: bool = False,
    **generation: Any,
) -> list[Path]:
    """One prompt's images, as the workflow makes them, outside it: ``n_images`` PNGs
    ``output_dir/<prompt_id>_000.png``, ... from ``model`` (``demo``, a local folder or a
    Hub id, as the config's ``model.source``).  ``generation`` sets keys of
    ``GenerationSettings`` (``steps=2``, ``height=64``, ...); the others are the config's
    defaults.  Returns the paths of the PNGs."""
    generate_shard(
        output_dir=output_dir,
        prompts=[PromptSpec(prompt_id, text, negative_prompt, n_images)],
        layout=ShardLayout(sharded=False),
        settings=GenerationSettings(**generation),
        model=resolve_model_source(model),
        allow_download=allow_download,
        gpus=gpus,
    )
    return [Path(output_dir) / f"{image_id(prompt_id, index)}.png" for index in range(n_images)]
