"""Tiny random-weight diffusers pipelines of every text-to-image family users pick today.

Each is built offline from the component classes and config keys of the real checkpoint it
imitates (``FAMILY_FACTS[name]["checkpoint"]``), at a size that builds and runs a 2-step
generation in about a second on a CPU, and saved with ``save_pretrained`` (safetensors) as
a folder that ``DiffusionPipeline.from_pretrained(folder)`` loads as it loads the real one.
Their images are noise: they stand for the real families wherever only the *kind* of
pipeline matters (the denoiser attribute, the scheduler, the native size, the call
arguments each family takes).

Tokenizers are built here too, never downloaded: CLIP's byte-level BPE (from
``sdcnn.demo.model``), T5's Unigram and Gemma's byte-fallback BPE over one token a
character (``T5Tokenizer(vocab=...)``, ``GemmaTokenizer(vocab=...)``: the
``tokenizers``-backed classes of transformers 5).

    folder = build_family("flux-dev", tmp_path)
    pipe = DiffusionPipeline.from_pretrained(folder)
"""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdcnn.demo import model as demo

FAMILIES: tuple[str, ...] = (
    "sd1",
    "sdxl",
    "sdxl-turbo",
    "sd3",
    "flux-schnell",
    "flux-dev",
    "pixart-sigma",
    "sana",
)

# What each family's folder is, as a test checks it:
# - pipeline: the class DiffusionPipeline.from_pretrained loads (model_index.json's);
# - denoiser: the attribute holding the denoising network ("unet" or "transformer");
# - scheduler: the scheduler class saved (the one the real checkpoint ships);
# - flow_matching: whether the denoiser predicts a flow (velocity) rather than noise;
# - native_size: the height and width in pixels of an image made with height and width left
#   out of the call (Sana's __call__ defaults to 1024 whatever the transformer; the others
#   derive it from the denoiser's sample_size, or Flux's constant 128, x the VAE's scale);
# - vae_scale_factor: pixels a latent pixel, 2 ** (VAE levels - 1), as the pipeline computes;
# - guidance_embeds: whether guidance_scale feeds a guidance embedding (FLUX.1-dev);
# - real_native_size: the real checkpoint's native size;
# - checkpoint: the public checkpoint it imitates.
FAMILY_FACTS: dict[str, dict[str, Any]] = {
    "sd1": {
        "pipeline": "StableDiffusionPipeline",
        "denoiser": "unet",
        "scheduler": "PNDMScheduler",
        "flow_matching": False,
        "native_size": 64,
        "vae_scale_factor": 8,
        "guidance_embeds": False,
        "real_native_size": 512,
        "checkpoint": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    },
    "sdxl": {
        "pipeline": "StableDiffusionXLPipeline",
        "denoiser": "unet",
        "scheduler": "EulerDiscreteScheduler",
        "flow_matching": False,
        "native_size": 64,
        "vae_scale_factor": 8,
        "guidance_embeds": False,
        "real_native_size": 1024,
        "checkpoint": "stabilityai/stable-diffusion-xl-base-1.0",
    },
    "sdxl-turbo": {
        "pipeline": "StableDiffusionXLPipeline",
        "denoiser": "unet",
        "scheduler": "EulerAncestralDiscreteScheduler",
        "flow_matching": False,
        "native_size": 64,
        "vae_scale_factor": 8,
        "guidance_embeds": False,
        "real_native_size": 512,
        "checkpoint": "stabilityai/sdxl-turbo",
    },
    "sd3": {
        "pipeline": "StableDiffusion3Pipeline",
        "denoiser": "transformer",
        "scheduler": "FlowMatchEulerDiscreteScheduler",
        "flow_matching": True,
        "native_size": 64,
        "vae_scale_factor": 8,
        "guidance_embeds": False,
        "real_native_size": 1024,
        "checkpoint": "stabilityai/stable-diffusion-3.5-medium",
    },
    "flux-schnell": {
        "pipeline": "FluxPipeline",
        "denoiser": "transformer",
        "scheduler": "FlowMatchEulerDiscreteScheduler",
        "flow_matching": True,
        "native_size": 128,  # FluxPipeline.default_sample_size (128) x a 1-level VAE's 1
        "vae_scale_factor": 1,
        "guidance_embeds": False,
        "real_native_size": 1024,
        "checkpoint": "black-forest-labs/FLUX.1-schnell",
    },
    "flux-dev": {
        "pipeline": "FluxPipeline",
        "denoiser": "transformer",
        "scheduler": "FlowMatchEulerDiscreteScheduler",
        "flow_matching": True,
        "native_size": 128,
        "vae_scale_factor": 1,
        "guidance_embeds": True,
        "real_native_size": 1024,
        "checkpoint": "black-forest-labs/FLUX.1-dev",
    },
    "pixart-sigma": {
        "pipeline": "PixArtSigmaPipeline",
        "denoiser": "transformer",
        "scheduler": "DPMSolverMultistepScheduler",
        "flow_matching": False,
        # transformer sample_size 32 (the smallest resolution binning knows) x VAE 2; the
        # pipeline bins 64 px to 256 px, makes that, and resizes the image back to 64
        "native_size": 64,
        "vae_scale_factor": 2,
        "guidance_embeds": False,
        "real_native_size": 1024,
        "checkpoint": "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    },
    "sana": {
        "pipeline": "SanaPipeline",
        "denoiser": "transformer",
        "scheduler": "DPMSolverMultistepScheduler",  # flow_prediction, use_flow_sigmas
        "flow_matching": True,
        # SanaPipeline.__call__(height=1024, width=1024), whatever the transformer; as the
        # real one's, the transformer's sample_size 32 x the DC-AE's 32 is 1024 too. Binning
        # (sample_size 32: the 1024 px buckets) makes every size at about 1024 px, then
        # resizes the image to the size asked
        "native_size": 1024,
        "vae_scale_factor": 32,
        "guidance_embeds": False,
        "real_native_size": 1024,
        "checkpoint": "Efficient-Large-Model/Sana_600M_1024px_diffusers",
    },
}

T5_DIM = 64  # the T5 encoder's d_model: the width of the prompt states SD3, Flux, PixArt read
GEMMA_DIM = 32  # the Gemma 2 encoder's hidden size: Sana's caption_channels
# the 1000-step noise schedules of Stable Diffusion 1.x / XL and of PixArt
SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


# --- tokenizers and text encoders ------------------------------------------------------------


def _characters() -> list[str]:
    """The printable ASCII characters but space: the pieces every prompt splits into."""
    return [char for char in string.printable if not char.isspace()]


def build_t5_tokenizer(max_tokens: int = 512) -> Any:
    """A T5 Unigram tokenizer (pad 0, </s> 1, <unk> 2 as T5's): "▁" and each printable
    character alone and after "▁", so any ASCII prompt has no unknown token."""
    from transformers import T5Tokenizer

    characters = _characters()
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{char}", -3.0) for char in characters]
    pieces += [(char, -4.0) for char in characters]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_tokens)


def build_gemma_tokenizer() -> Any:
    """A Gemma byte-fallback BPE tokenizer with Gemma's special tokens (<pad> 0, <eos> 1,
    <bos> 2, <unk> 3, <mask> 4), the 256 byte tokens and one token a printable character."""
    from transformers import GemmaTokenizer

    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    tokens += ["▁", *_characters()]
    vocab = {token: i for i, token in enumerate(tokens)}
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)  # <bos> first, as Gemma


def _clip_config(tokenizer: Any, projection_dim: int = demo.TEXT_HIDDEN_SIZE) -> Any:
    """The demo's 2-layer CLIP text config (``sdcnn.demo.model.build_text_encoder``'s)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=demo.TEXT_HIDDEN_SIZE,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=projection_dim,
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_clip_with_projection(tokenizer: Any) -> Any:
    """A CLIPTextModelWithProjection (SDXL's and SD3's second, SD3's first CLIP encoder)."""
    from transformers import CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(_clip_config(tokenizer))


def build_t5_encoder(tokenizer: Any) -> Any:
    """A 1-layer T5 v1.1 encoder (gated GELU, as T5-XXL) of width ``T5_DIM``."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=T5_DIM,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config)


def build_gemma_encoder(tokenizer: Any) -> Any:
    """A 1-layer Gemma 2 decoder (Sana's text encoder: gemma-2-2b-it's decoder) of width
    ``GEMMA_DIM``."""
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=GEMMA_DIM,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        attn_implementation="eager",
    )
    return Gemma2Model(config)


# --- VAEs ------------------------------------------------------------------------------------


def build_vae_kl(
    levels: int,
    latent_channels: int,
    *,
    scaling_factor: float,
    shift_factor: float | None = None,
    quant_conv: bool = True,
    mid_attention: bool = True,
) -> Any:
    """An AutoencoderKL of ``levels`` levels of 8 channels: ``2 ** (levels - 1)``x
    down-sampling. SD3's and Flux's have 16 latent channels, no quant convs and a shift."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=(8,) * levels,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=1,
        norm_num_groups=8,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=quant_conv,
        use_post_quant_conv=quant_conv,
        mid_block_add_attention=mid_attention,
    )


def build_vae_dc() -> Any:
    """An AutoencoderDC shaped as Sana's DC-AE f32c32 (6 levels: 32x, 32 latent channels;
    ResBlocks then EfficientViT blocks; batch then RMS norm), 8 to 32 channels a level
    (the deepest a multiple of the latent channels, for the shortcuts between them)."""
    from diffusers import AutoencoderDC

    blocks = ("ResBlock",) * 3 + ("EfficientViTBlock",) * 3
    channels = (8, 8, 8, 16, 32, 32)
    multiscales = ((),) * 3 + ((5,),) * 3
    return AutoencoderDC(
        in_channels=3,
        latent_channels=32,
        attention_head_dim=8,
        encoder_block_types=blocks,
        decoder_block_types=blocks,
        encoder_block_out_channels=channels,
        decoder_block_out_channels=channels,
        encoder_layers_per_block=(1,) * 6,
        decoder_layers_per_block=(1,) * 6,
        encoder_qkv_multiscales=multiscales,
        decoder_qkv_multiscales=multiscales,
        upsample_block_type="interpolate",
        downsample_block_type="Conv",
        decoder_norm_types=("batch_norm",) * 3 + ("rms_norm",) * 3,
        decoder_act_fns=("relu",) * 3 + ("silu",) * 3,
        scaling_factor=0.41407,
    )


# --- the families ------------------------------------------------------------------------------


def _seeded(build: Callable[[], Any]) -> Any:
    """``build()`` with torch's global seed set to 0 first: each component's weights are the
    same whatever was built before it."""
    import torch

    torch.manual_seed(0)
    return build()


def _sd1() -> Any:
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    tokenizer = demo.build_tokenizer()
    return StableDiffusionPipeline(
        vae=_seeded(lambda: demo.build_vae(block_out_channels=(8, 16, 32, 32), sample_size=64)),
        text_encoder=_seeded(lambda: demo.build_text_encoder(tokenizer, intermediate_size=37)),
        tokenizer=tokenizer,
        unet=_seeded(lambda: demo.build_unet(8, block_out_channels=(32, 64), attention_head_dim=4)),
        scheduler=PNDMScheduler(
            **SD_BETAS, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_unet() -> Any:
    """SDXL's UNet shape: "text_time" added conditions (pooled text + 6 size numbers),
    cross attention to both CLIP encoders' states side by side, linear projections."""
    from diffusers import UNet2DConditionModel

    time_dim = 8
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        cross_attention_dim=2 * demo.TEXT_HIDDEN_SIZE,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + demo.TEXT_HIDDEN_SIZE,
        norm_num_groups=8,
    )


def _sdxl(turbo: bool) -> Any:
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
    )

    tokenizer = demo.build_tokenizer()
    tokenizer_2 = demo.build_tokenizer()
    if turbo:
        scheduler = EulerAncestralDiscreteScheduler(
            **SD_BETAS, timestep_spacing="trailing", steps_offset=1
        )
    else:
        scheduler = EulerDiscreteScheduler(
            **SD_BETAS, timestep_spacing="leading", steps_offset=1, interpolation_type="linear"
        )
    return StableDiffusionXLPipeline(
        vae=_seeded(lambda: build_vae_kl(4, 4, scaling_factor=0.13025)),
        text_encoder=_seeded(lambda: demo.build_text_encoder(tokenizer, intermediate_size=37)),
        text_encoder_2=_seeded(lambda: build_clip_with_projection(tokenizer_2)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=_seeded(_sdxl_unet),
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def _sd3() -> Any:
    """SD 3.5 medium's shape: MMDiT-X (dual attention in the first layer, RMS q/k norm),
    two CLIP encoders with projection and a T5, a 16-channel VAE with a shift."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    clip_dim = demo.TEXT_HIDDEN_SIZE
    transformer = _seeded(
        lambda: SD3Transformer2DModel(
            sample_size=8,
            patch_size=2,
            in_channels=16,
            out_channels=16,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=T5_DIM,  # >= both CLIPs' states side by side, as 4096 >= 2048
            caption_projection_dim=32,
            pooled_projection_dim=2 * clip_dim,
            pos_embed_max_size=16,
            dual_attention_layers=(0,),
            qk_norm="rms_norm",
        )
    )
    tokenizer, tokenizer_2, tokenizer_3 = (
        demo.build_tokenizer(),
        demo.build_tokenizer(),
        build_t5_tokenizer(),
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_seeded(
            lambda: build_vae_kl(
                4, 16, scaling_factor=1.5305, shift_factor=0.0609, quant_conv=False
            )
        ),
        text_encoder=_seeded(lambda: build_clip_with_projection(tokenizer)),
        tokenizer=tokenizer,
        text_encoder_2=_seeded(lambda: build_clip_with_projection(tokenizer_2)),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_seeded(lambda: build_t5_encoder(tokenizer_3)),
        tokenizer_3=tokenizer_3,
    )


def _flux(dev: bool) -> Any:
    """FLUX.1's shape: double- then single-stream blocks with 3-axis RoPE, CLIP (pooled)
    and T5 (sequence) prompts, a 16-channel VAE packed 2x2 into 64 transformer channels.
    The VAE has one level (no down-sampling): FluxPipeline's native size is its constant
    default_sample_size 128 x the VAE's scale, 128 px here."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    transformer = _seeded(
        lambda: FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=T5_DIM,
            pooled_projection_dim=demo.TEXT_HIDDEN_SIZE,
            guidance_embeds=dev,
            axes_dims_rope=(4, 6, 6),
        )
    )
    shifting = {"base_shift": 0.5, "max_shift": 1.15}
    shifting |= {"base_image_seq_len": 256, "max_image_seq_len": 4096}
    if dev:
        scheduler = FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, **shifting
        )
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(
            shift=1.0, use_dynamic_shifting=False, **shifting
        )
    tokenizer, tokenizer_2 = demo.build_tokenizer(), build_t5_tokenizer()
    return FluxPipeline(
        scheduler=scheduler,
        vae=_seeded(
            lambda: build_vae_kl(
                1,
                16,
                scaling_factor=0.3611,
                shift_factor=0.1159,
                quant_conv=False,
                mid_attention=False,  # 128 x 128 positions: attention there would cost most
            )
        ),
        text_encoder=_seeded(lambda: demo.build_text_encoder(tokenizer, intermediate_size=37)),
        tokenizer=tokenizer,
        text_encoder_2=_seeded(lambda: build_t5_encoder(tokenizer_2)),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def _pixart_sigma() -> Any:
    """PixArt-Σ's shape: a DiT with adaLN-single and cross attention to T5 states, learned
    sigma (8 output channels for 4 latent ones), an SDXL-like VAE, DPM-Solver++ (ε)."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        PixArtSigmaPipeline,
        PixArtTransformer2DModel,
    )

    transformer = _seeded(
        lambda: PixArtTransformer2DModel(
            sample_size=32,
            patch_size=2,
            in_channels=4,
            out_channels=8,
            num_layers=2,
            num_attention_heads=3,
            attention_head_dim=8,
            cross_attention_dim=24,
            caption_channels=T5_DIM,
            attention_bias=True,
            activation_fn="gelu-approximate",
            num_embeds_ada_norm=1000,
            norm_type="ada_norm_single",
            norm_elementwise_affine=False,
            norm_eps=1e-6,
            use_additional_conditions=False,
        )
    )
    tokenizer = build_t5_tokenizer()
    return PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=_seeded(lambda: build_t5_encoder(tokenizer)),
        # 2 levels, no attention in the middle: the binned 256 px are 128 x 128 latents
        vae=_seeded(lambda: build_vae_kl(2, 4, scaling_factor=0.13025, mid_attention=False)),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),  # linear betas, epsilon, dpmsolver++
    )


def _sana() -> Any:
    """Sana's shape: a linear-attention DiT over 32x DC-AE latents, Gemma 2 prompt states,
    DPM-Solver++ on flow sigmas (flow_prediction, flow_shift 3) as Sana 1024px ships."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel

    transformer = _seeded(
        lambda: SanaTransformer2DModel(
            in_channels=32,
            out_channels=32,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=2,
            num_cross_attention_heads=2,
            cross_attention_head_dim=8,
            cross_attention_dim=16,
            caption_channels=GEMMA_DIM,
            mlp_ratio=2.5,
            attention_bias=False,
            sample_size=32,
            patch_size=1,
            norm_elementwise_affine=False,
            norm_eps=1e-6,
        )
    )
    tokenizer = build_gemma_tokenizer()
    tokenizer.padding_side = "right"
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=_seeded(lambda: build_gemma_encoder(tokenizer)),
        vae=_seeded(build_vae_dc),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(
            flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction"
        ),
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "sd1": _sd1,
    "sdxl": lambda: _sdxl(turbo=False),
    "sdxl-turbo": lambda: _sdxl(turbo=True),
    "sd3": _sd3,
    "flux-schnell": lambda: _flux(dev=False),
    "flux-dev": lambda: _flux(dev=True),
    "pixart-sigma": _pixart_sigma,
    "sana": _sana,
}


def build_pipeline(name: str) -> Any:
    """The in-memory tiny pipeline of family ``name`` (one of FAMILIES)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    return BUILDERS[name]()


def build_family(name: str, folder: Path) -> Path:
    """The tiny pipeline of family ``name`` saved as ``folder / name`` (safetensors), which
    ``DiffusionPipeline.from_pretrained`` loads; an existing one is returned as it is.

    Built in a temporary folder beside it, then renamed: a reader never sees a partial
    folder, and of two processes building it at once the first rename wins."""
    target = Path(folder) / name
    if target.exists():
        return target
    pipeline = build_pipeline(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 -> a folder's usual mode
    try:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        os.rename(tmp, target)
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
