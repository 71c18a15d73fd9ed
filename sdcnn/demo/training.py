"""Train, from scratch on the CPU, a tiny Stable Diffusion model that draws ``sdcnn.demo.pictures``.

Every component is the one a real Stable Diffusion 1.x checkpoint has, at a
size that trains on two CPU cores (its time: benchmarks/RESULTS.md §13):

1. the byte-level CLIP tokenizer of ``sdcnn.demo.model``, its length fitted to
   the longest vocabulary prompt;
2. an AutoencoderKL (64 x 64 x 3 pixels <-> 16 x 16 x 4 latents), trained
   first, on its own, for reconstruction (plus a tiny KL term);
3. a CLIPTextModel and a UNet2DConditionModel with cross attention, trained
   together to predict the noise DDPM added to the latents (1000 steps,
   scaled_linear betas), with a share of empty prompts so classifier-free
   guidance works;

then saved with ``StableDiffusionPipeline.save_pretrained`` (safetensors, a DDIM
scheduler for inference), so it loads through the workflow's ordinary path.
The same seed and thread count give the same weights.

    python -m sdcnn.demo.training --output sdcnn/demo/assets/demo-pipeline
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from sdcnn.core.fileio import atomic_directory, dumps_json
from sdcnn.demo import pictures
from sdcnn.demo.model import (
    TEXT_HIDDEN_SIZE,
    TRAIN_TIMESTEPS,
    assemble_pipeline,
    build_text_encoder,
    build_tokenizer,
    build_unet,
    build_vae,
    noise_schedule_config,
)

log = logging.getLogger("sdcnn.demo.training")

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "assets" / "demo-pipeline"
TRAINING_RECORD = "training.json"  # written into the pipeline folder: settings and final losses
VAE_CHANNELS = (16, 32, 32)  # three levels: 64 -> 32 -> 16 pixels
UNET_CHANNELS = (32, 64)
ENCODE_CHUNK = 256  # pictures per VAE forward when encoding the whole training set


@dataclass(frozen=True)
class DemoPipelineTrainingSettings:
    """Everything that decides the demo pipeline's trained weights (with the torch version
    and thread count); the CNN's are sdcnn.classify.training.TrainingSettings."""

    seed: int = 0  # model initialisation, batches, noise, timesteps, prompt dropout
    threads: int = 2  # torch threads: results are reproducible for a fixed count
    pictures: int = 4000  # training pictures: pictures.draw_picture(0 .. pictures - 1)
    vae_steps: int = 800
    vae_batch: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6  # x KL, against the *mean* squared error: latents come out noisy
    unet_steps: int = 3000  # UNet and text encoder, trained together
    unet_batch: int = 32
    unet_lr: float = 1e-3
    warmup_steps: int = 100  # linear warm-up, then cosine decay to zero (both stages)
    empty_prompt_share: float = 0.1  # prompts replaced by "" (for classifier-free guidance)
    ema_decay: float = 0.999  # saved UNet and text encoder are this moving average; 0: last step
    log_every: int = 100  # steps between progress lines


@dataclass(frozen=True)
class TrainingSet:
    """The training pictures as a float tensor in [-1, 1] (N x 3 x 64 x 64) and prompt indices."""

    pixels: Any  # torch.Tensor
    prompt_indices: Any  # torch.Tensor of int64, index into ``prompts``
    prompts: list[str]  # the vocabulary's prompts, then "" (the unconditional prompt) last


def token_limit(prompts: Sequence[str]) -> int:
    """Tokens for the longest prompt (start and end included), rounded up to a multiple of 8.

    The byte-level tokenizer makes a token of almost every character, so the 16
    tokens that look ample cut "a yellow triangle" (17) short.
    """
    tokenizer = build_tokenizer()
    longest = max(len(tokenizer(prompt).input_ids) for prompt in prompts)
    return 8 * math.ceil(longest / 8)


def build_training_set(count: int) -> TrainingSet:
    import torch

    prompts = [*pictures.vocabulary_prompts(), ""]
    images, indices = [], []
    for seed in range(count):
        image, prompt = pictures.draw_picture(seed)
        images.append(image)
        indices.append(prompts.index(prompt))
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return TrainingSet(pixels.contiguous(), torch.tensor(indices), prompts)


def latent_size() -> int:
    return pictures.SIZE // 2 ** (len(VAE_CHANNELS) - 1)


def shapes_text_encoder(tokenizer: Any) -> Any:
    return build_text_encoder(tokenizer, intermediate_size=2 * TEXT_HIDDEN_SIZE)


def shapes_vae() -> Any:
    return build_vae(VAE_CHANNELS, sample_size=pictures.SIZE)


def shapes_unet() -> Any:
    # cross attention at the coarser level (8 x 8) and in the middle block: attention
    # over all 16 x 16 latents too made a training step much slower
    return build_unet(latent_size(), UNET_CHANNELS, attention_head_dim=8)


def learning_rate_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Progress:
    """Progress lines: step, loss (mean since the last line), elapsed time and ETA."""

    def __init__(self, stage: str, total: int, every: int) -> None:
        self.stage, self.total, self.every = stage, total, max(1, every)
        self.started = time.perf_counter()
        self.losses: list[float] = []
        self.last_mean = math.nan

    def record(self, step: int, loss: float) -> None:
        self.losses.append(loss)
        done = step + 1
        if done % self.every == 0 or done == self.total:
            self.last_mean = float(np.mean(self.losses))
            elapsed = time.perf_counter() - self.started
            eta = elapsed / done * (self.total - done)
            log.info(
                "%s step %d/%d loss %.5f elapsed %.0f s ETA %.0f s",
                self.stage,
                done,
                self.total,
                self.last_mean,
                elapsed,
                eta,
            )
            self.losses.clear()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _random_batches(count: int, batch: int, steps: int, generator: Any) -> Iterator[Any]:
    import torch

    for _ in range(steps):
        yield torch.randint(0, count, (batch,), generator=generator)


def _optimizer(parameters: Any, lr: float, total: int, warmup: int) -> tuple[Any, Any]:
    import torch

    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total, warmup)
    )
    return optimizer, schedule


def train_vae(
    vae: Any, pixels: Any, settings: DemoPipelineTrainingSettings, generator: Any
) -> float:
    """Reconstruction (MSE in [-1, 1]) plus ``kl_weight`` x KL; returns the last logged loss."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    vae.train()
    optimizer, schedule = _optimizer(
        vae.parameters(), settings.vae_lr, settings.vae_steps, settings.warmup_steps
    )
    progress = Progress("vae", settings.vae_steps, settings.log_every)
    batches = _random_batches(len(pixels), settings.vae_batch, settings.vae_steps, generator)
    for step, indices in enumerate(batches):
        batch = pixels[indices]
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        loss = F.mse_loss(reconstruction, batch) + settings.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        progress.record(step, loss.item())
    vae.eval()
    return progress.last_mean


@dataclass(frozen=True)
class Latents:
    """Every training picture's latent distribution, and the factor that gives samples std 1."""

    means: Any  # torch.Tensor, N x 4 x 16 x 16
    stds: Any
    scaling_factor: float  # what SD 1.x's 0.18215 is for its VAE

    def sample(self, indices: Any, generator: Any) -> Any:
        import torch

        means = self.means[indices]
        noise = torch.randn(means.shape, generator=generator)
        return (means + self.stds[indices] * noise) * self.scaling_factor


def encode_training_set(vae: Any, pixels: Any, generator: Any) -> Latents:
    """Encode all pictures once (no gradients); the scaling factor from one sample of each."""
    import torch

    means, stds = [], []
    with torch.no_grad():
        for start in range(0, len(pixels), ENCODE_CHUNK):
            posterior = vae.encode(pixels[start : start + ENCODE_CHUNK]).latent_dist
            means.append(posterior.mean)
            stds.append(posterior.std)
    mean, std = torch.cat(means), torch.cat(stds)
    samples = mean + std * torch.randn(mean.shape, generator=generator)
    return Latents(mean, std, float(1.0 / samples.std()))


class MovingAverage:
    """An exponential moving average of some modules' parameters (warm-up as in diffusers)."""

    def __init__(self, modules: Sequence[Any], decay: float) -> None:
        self.decay = decay
        self.parameters = [p for module in modules for p in module.parameters()]
        self.shadow = [p.detach().clone() for p in self.parameters]
        self.updates = 0

    def update(self) -> None:
        import torch

        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for average, parameter in zip(self.shadow, self.parameters, strict=True):
                average.lerp_(parameter.detach(), 1.0 - decay)

    def copy_to_modules(self) -> None:
        import torch

        with torch.no_grad():
            for average, parameter in zip(self.shadow, self.parameters, strict=True):
                parameter.copy_(average)


def prompt_token_ids(tokenizer: Any, prompts: Sequence[str]) -> Any:
    """Token ids exactly as the pipeline makes them: padded to the tokenizer's length."""
    return tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_denoiser(
    unet: Any,
    text_encoder: Any,
    token_ids: Any,
    latents: Latents,
    prompt_indices: Any,
    settings: DemoPipelineTrainingSettings,
    generator: Any,
) -> float:
    """The UNet and text encoder learn DDPM's noise; returns the last logged loss.

    ``token_ids`` has one row per prompt, the empty prompt last; ``prompt_indices``
    picks each picture's row.  Each step encodes those few rows once and gathers
    each picture's embedding from them.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler(**noise_schedule_config())
    modules = (unet, text_encoder)
    for module in modules:
        module.train()
    parameters = [p for module in modules for p in module.parameters()]
    optimizer, schedule = _optimizer(
        parameters, settings.unet_lr, settings.unet_steps, settings.warmup_steps
    )
    average = MovingAverage(modules, settings.ema_decay) if settings.ema_decay > 0 else None
    empty_prompt = len(token_ids) - 1
    progress = Progress("unet", settings.unet_steps, settings.log_every)
    size = settings.unet_batch
    batches = _random_batches(len(prompt_indices), size, settings.unet_steps, generator)
    for step, indices in enumerate(batches):
        clean = latents.sample(indices, generator)
        dropped = torch.rand(size, generator=generator) < settings.empty_prompt_share
        rows = torch.where(dropped, empty_prompt, prompt_indices[indices])
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, TRAIN_TIMESTEPS, (size,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        embeddings = text_encoder(token_ids)[0][rows]
        prediction = unet(noisy, timesteps, encoder_hidden_states=embeddings).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        if average is not None:
            average.update()
        progress.record(step, loss.item())
    if average is not None:
        average.copy_to_modules()
    for module in modules:
        module.eval()
    return progress.last_mean


def training_record(
    settings: DemoPipelineTrainingSettings, losses: dict[str, float]
) -> dict[str, Any]:
    """What made the weights: settings, library versions, final losses (no times: they vary)."""
    from sdcnn.core.provenance import package_versions

    return {
        "schema": "sdcnn-demo-training/1",
        "command": " ".join(["python -m sdcnn.demo.training", *settings_arguments(settings)]),
        "settings": asdict(settings),
        "vocabulary": {"colours": pictures.COLOURS, "shapes": list(pictures.SHAPES)},
        "versions": package_versions(("torch", "diffusers", "transformers", "numpy", "opencv")),
        "final_losses": losses,
    }


def train_pipeline(settings: DemoPipelineTrainingSettings) -> tuple[Any, dict[str, Any]]:
    """Train every component; return the assembled pipeline and its training record."""
    import torch

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.perf_counter()
    training_set = build_training_set(settings.pictures)
    tokenizer = build_tokenizer(token_limit(training_set.prompts))
    text_encoder, vae, unet = shapes_text_encoder(tokenizer), shapes_vae(), shapes_unet()
    log.info(
        "%d pictures (%.1f s); parameters: text encoder %d, VAE %d, UNet %d; %d tokens a prompt",
        settings.pictures,
        time.perf_counter() - started,
        _count(text_encoder),
        _count(vae),
        _count(unet),
        tokenizer.model_max_length,
    )
    vae_loss = train_vae(vae, training_set.pixels, settings, generator)
    vae.requires_grad_(False)
    latents = encode_training_set(vae, training_set.pixels, generator)
    vae.register_to_config(scaling_factor=latents.scaling_factor)
    log.info("latent scaling factor %.5f", latents.scaling_factor)
    token_ids = prompt_token_ids(tokenizer, training_set.prompts)
    unet_loss = train_denoiser(
        unet, text_encoder, token_ids, latents, training_set.prompt_indices, settings, generator
    )
    pipeline = assemble_pipeline(tokenizer, text_encoder, vae, unet)
    losses = {"vae": vae_loss, "unet": unet_loss}
    log.info("trained in %.0f s", time.perf_counter() - started)
    return pipeline, training_record(settings, losses)


def _count(module: Any) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def save_trained_pipeline(pipeline: Any, record: dict[str, Any], output_dir: Path) -> None:
    """The diffusers folder (safetensors only) and ``training.json``, written atomically."""
    with atomic_directory(output_dir) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        (tmp / TRAINING_RECORD).write_text(dumps_json(record), encoding="utf-8")


def settings_arguments(settings: DemoPipelineTrainingSettings) -> list[str]:
    """The command-line options that reproduce ``settings`` (those that differ from defaults)."""
    defaults = DemoPipelineTrainingSettings()
    return [
        f"--{field.name.replace('_', '-')} {getattr(settings, field.name)}"
        for field in fields(DemoPipelineTrainingSettings)
        if getattr(settings, field.name) != getattr(defaults, field.name)
    ]


def parse_arguments(argv: Sequence[str] | None) -> tuple[Path, DemoPipelineTrainingSettings]:
    parser = argparse.ArgumentParser(
        prog="python -m sdcnn.demo.training",
        description="Train the tiny shapes text-to-image pipeline on the CPU and save it.",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="pipeline folder (replaced at the end)"
    )
    defaults = DemoPipelineTrainingSettings()
    for field in fields(DemoPipelineTrainingSettings):
        default = getattr(defaults, field.name)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"default {default}",
        )
    arguments = vars(parser.parse_args(argv))
    output = arguments.pop("output")
    return output, DemoPipelineTrainingSettings(**arguments)


def main(argv: Sequence[str] | None = None) -> int:
    from sdcnn.core.environment import pin_threads, set_hub_mode

    output, settings = parse_arguments(argv)
    pin_threads(settings.threads)
    set_hub_mode(offline=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    started = time.perf_counter()
    pipeline, record = train_pipeline(settings)
    save_trained_pipeline(pipeline, record, output)
    size = sum(path.stat().st_size for path in output.rglob("*") if path.is_file())
    log.info(
        "saved %s (%.1f MB) in %.0f s in all", output, size / 1e6, time.perf_counter() - started
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
