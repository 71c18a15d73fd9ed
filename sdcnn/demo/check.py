"""Does a shapes pipeline draw what it is asked?  Generate, read back with the checker, tabulate.

The pipeline loads and draws through the workflow's own path
(``sdcnn.generate.pipeline.load_pipeline`` and ``generate_images``: diffusers'
``DiffusionPipeline.from_pretrained`` with local files only), and each
picture is read by ``sdcnn.demo.pictures.describe_picture``, which knows nothing of
the model.

    python -m sdcnn.demo.check [--model sdcnn/demo/assets/demo-pipeline] [--seeds 5] \
        [--grid grid.png]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdcnn.demo import pictures
from sdcnn.demo.training import DEFAULT_OUTPUT

log = logging.getLogger("sdcnn.demo.check")

STEPS = 20
GUIDANCE = 4.0


@dataclass(frozen=True)
class Sample:
    """One generated picture and what the checker saw in it."""

    prompt: str
    seed: int
    pixels: np.ndarray  # uint8 RGB, H x W x 3
    seen: tuple[str | None, str | None]  # (colour, shape) of the dominant shape, by the checker
    shape_count: int  # shapes the checker found (the prompt asks for one)

    @property
    def expected(self) -> tuple[str, str]:
        _, colour, shape = self.prompt.split(" ")
        return colour, shape

    @property
    def correct(self) -> bool:
        return self.seen == self.expected


def load_shapes_pipeline(folder: str | Path, threads: int = 2) -> Any:
    """The pipeline in ``folder`` on the CPU in float32, progress bars off."""
    import torch

    from sdcnn.generate.model_source import ModelSource
    from sdcnn.generate.pipeline import load_pipeline

    torch.set_num_threads(threads)
    model = ModelSource("local", str(folder), str(folder))
    pipeline = load_pipeline(
        model, device="cpu", dtype=torch.float32, scheduler="default", allow_download=False
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def draw_and_check(
    pipeline: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int = STEPS,
    guidance: float = GUIDANCE,
) -> list[Sample]:
    """For each prompt, one pipeline call for all ``seeds`` at the model's native size."""
    import torch

    from sdcnn.generate.pipeline import GenerationSettings, PromptSpec, generate_images

    side = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    settings = GenerationSettings(
        steps=steps,
        guidance_scale=guidance,
        height=side,
        width=side,
        scheduler="default",
        base_seed=0,  # unused: the seeds are given
        threads=torch.get_num_threads(),
        precision="float32",
    )
    samples = []
    for prompt in prompts:
        spec = PromptSpec(prompt_id=prompt, text=prompt, negative_prompt="", n_images=len(seeds))
        images = generate_images(pipeline, spec, seeds, settings)
        for seed, image in zip(seeds, images, strict=True):
            pixels = np.asarray(image.convert("RGB"))
            analysis = pictures.analyse_picture(pixels)
            seen = (analysis.colour, analysis.shape)
            samples.append(Sample(prompt, seed, pixels, seen, analysis.blob_count))
    return samples


def _seen_text(seen: tuple[str | None, str | None]) -> str:
    return " ".join(part or "?" for part in seen)


def _notes(sample: Sample) -> list[str]:
    notes = [] if sample.correct else [f"seed {sample.seed}: {_seen_text(sample.seen)}"]
    if sample.shape_count != 1:
        notes.append(f"seed {sample.seed}: {sample.shape_count} shapes")
    return notes


def accuracy_table(samples: Sequence[Sample]) -> str:
    """One line per prompt: pictures right (colour and shape of the dominant shape) / drawn,
    pictures with exactly one shape, and what the checker saw where either went wrong."""
    prompts = list(dict.fromkeys(sample.prompt for sample in samples))
    width = max(len(prompt) for prompt in prompts)
    lines = [f"{'prompt':<{width}}  correct  one shape  notes"]
    for prompt in prompts:
        drawn = [sample for sample in samples if sample.prompt == prompt]
        correct = f"{sum(sample.correct for sample in drawn)}/{len(drawn)}"
        single = f"{sum(sample.shape_count == 1 for sample in drawn)}/{len(drawn)}"
        notes = ", ".join(note for sample in drawn for note in _notes(sample))
        lines.append(f"{prompt:<{width}}  {correct:>7}  {single:>9}  {notes}".rstrip())
    correct_count = sum(sample.correct for sample in samples)
    single_count = sum(sample.shape_count == 1 for sample in samples)
    correct = f"{correct_count}/{len(samples)}"
    single = f"{single_count}/{len(samples)}"
    lines.append(
        f"{'all':<{width}}  {correct:>7}  {single:>9}  "
        f"({correct_count / len(samples):.1%} correct, {single_count / len(samples):.1%} one shape)"
    )
    return "\n".join(lines)


def picture_grid(samples: Sequence[Sample], columns: int, *, scale: int = 2) -> np.ndarray:
    """The samples in rows of ``columns``, enlarged ``scale`` times, on a grey grid."""
    gap = 2 * scale
    height, width, _ = samples[0].pixels.shape
    rows = -(-len(samples) // columns)
    grid = np.full(
        (rows * (height * scale + gap) + gap, columns * (width * scale + gap) + gap, 3),
        128,
        np.uint8,
    )
    for index, sample in enumerate(samples):
        row, column = divmod(index, columns)
        top, left = gap + row * (height * scale + gap), gap + column * (width * scale + gap)
        enlarged = sample.pixels.repeat(scale, axis=0).repeat(scale, axis=1)
        grid[top : top + height * scale, left : left + width * scale] = enlarged
    return grid


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sdcnn.demo.check",
        description="Generate every vocabulary prompt and check the pictures with the checker.",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_OUTPUT, help="pipeline folder")
    parser.add_argument("--seeds", type=int, default=5, help="pictures per prompt (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=STEPS, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=GUIDANCE, help="guidance scale")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--grid", type=Path, help="also save the pictures as a PNG grid here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-prompt table; exit status 1 when any picture is wrong."""
    from sdcnn.core.environment import pin_threads, set_hub_mode

    arguments = parse_arguments(argv)
    pin_threads(arguments.threads)
    set_hub_mode(offline=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    pipeline = load_shapes_pipeline(arguments.model, arguments.threads)
    started = time.perf_counter()
    samples = draw_and_check(
        pipeline,
        pictures.vocabulary_prompts(),
        range(arguments.seeds),
        steps=arguments.steps,
        guidance=arguments.guidance,
    )
    elapsed = time.perf_counter() - started
    print(accuracy_table(samples))
    print(
        f"{len(samples)} pictures, {arguments.steps} steps, guidance {arguments.guidance}: "
        f"{elapsed:.1f} s ({elapsed / len(samples):.2f} s a picture)"
    )
    if arguments.grid is not None:
        from PIL import Image

        Image.fromarray(picture_grid(samples, arguments.seeds)).save(arguments.grid)
        print(f"grid (a row per prompt, a column per seed): {arguments.grid}")
    return 0 if all(sample.correct for sample in samples) else 1


if __name__ == "__main__":
    raise SystemExit(main())
