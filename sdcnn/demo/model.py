"""A tiny random-weight Stable Diffusion pipeline, and the byte-level tokenizer of the
shipped demo model.

The pipeline has every component of a real Stable Diffusion 1.x checkpoint (CLIP
tokenizer and text encoder, UNet, VAE with 8x down-sampling, DDIM scheduler) at a size
that runs in a fraction of a second on a CPU, saved with ``save_pretrained`` in
safetensors.  Its images are coloured noise: tests and the GPU benchmark's CPU smoke run
use it where any pipeline will do (a safety checker added to it, say).  The workflow's
default model is the *trained* one shipped in ``sdcnn/demo/assets/demo-pipeline``
(``sdcnn.demo.training`` made it; ``sdcnn.generate.model_source.DEMO_PIPELINE_DIR``).

Both pipelines are built from this module's components (``build_text_encoder``,
``build_unet``, ``build_vae``, ``inference_scheduler``, ``assemble_pipeline``), at their
own sizes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sdcnn.core.fileio import atomic_directory

TEXT_HIDDEN_SIZE = 32
LATENT_CHANNELS = 4
MAX_TOKENS = 77
TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012  # Stable Diffusion 1.x's scaled_linear schedule
LATENT_SIZE = 64  # x8 (VAE) = 512 px, the default height and width of Stable Diffusion 1.x


def _byte_unicode_alphabet() -> list[str]:
    """The 256 printable characters CLIP's byte-level BPE uses for the 256 byte values."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codepoints = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codepoints.append(256 + extra)
            extra += 1
    return [chr(code) for code in codepoints]


def write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A byte-level CLIP vocabulary with no merges: every byte is a token.

    Each of the 256 byte characters appears bare and with the end-of-word
    marker ``</w>``; without both, words tokenize to unknown tokens.
    """
    alphabet = _byte_unicode_alphabet()
    tokens = [*alphabet, *(char + "</w>" for char in alphabet), "<|startoftext|>", "<|endoftext|>"]
    vocab_path = folder / "vocab.json"
    merges_path = folder / "merges.txt"
    vocab_path.write_text(
        json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8"
    )
    merges_path.write_text("#version: 0.2\n", encoding="utf-8")
    return vocab_path, merges_path


def build_tokenizer(max_tokens: int = MAX_TOKENS) -> Any:
    """The byte-level CLIP tokenizer; prompts are cut to ``max_tokens`` (start and end included)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as folder:
        vocab_path, merges_path = write_tokenizer_files(Path(folder))
        return CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=max_tokens)


def build_text_encoder(tokenizer: Any, intermediate_size: int) -> Any:
    """A 2-layer CLIP text encoder of ``TEXT_HIDDEN_SIZE`` for ``tokenizer``'s tokens."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            hidden_size=TEXT_HIDDEN_SIZE,
            intermediate_size=intermediate_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=TEXT_HIDDEN_SIZE,
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_unet(
    sample_size: int, block_out_channels: tuple[int, ...], attention_head_dim: int
) -> Any:
    """A two-level UNet over ``sample_size``-square latents, cross attention (to the
    text encoder's states) at the coarser level and in the middle block only."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN_SIZE,
        attention_head_dim=attention_head_dim,
        norm_num_groups=8,
    )


def build_vae(block_out_channels: tuple[int, ...], sample_size: int) -> Any:
    """An RGB AutoencoderKL, one level a channel count: ``2 ** (levels - 1)``x down-sampling."""
    from diffusers import AutoencoderKL

    levels = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=sample_size,
    )


def noise_schedule_config() -> dict[str, Any]:
    """Stable Diffusion 1.x's noise schedule, for training (DDPM) and inference (DDIM)."""
    return {
        "num_train_timesteps": TRAIN_TIMESTEPS,
        "beta_start": BETA_START,
        "beta_end": BETA_END,
        "beta_schedule": "scaled_linear",
    }


def inference_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        **noise_schedule_config(), clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )


def assemble_pipeline(tokenizer: Any, text_encoder: Any, vae: Any, unet: Any) -> Any:
    """The components as a StableDiffusionPipeline with the DDIM scheduler, no safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=inference_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_demo_pipeline(seed: int) -> Any:
    """Construct the tiny pipeline with weights drawn from ``seed``."""
    import torch

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = build_text_encoder(tokenizer, intermediate_size=37)
    # cross-attention only at the coarser level: attention over all 64x64 latents would
    # cost far more than the rest of this tiny network
    unet = build_unet(LATENT_SIZE, block_out_channels=(32, 64), attention_head_dim=4)
    vae = build_vae(block_out_channels=(8, 16, 32, 32), sample_size=LATENT_SIZE * 8)
    return assemble_pipeline(tokenizer, text_encoder, vae, unet)


def save_demo_pipeline(output_dir: str | Path, seed: int) -> None:
    """Build the demo pipeline and save it atomically as a diffusers folder."""
    pipeline = build_demo_pipeline(seed)
    with atomic_directory(output_dir) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
