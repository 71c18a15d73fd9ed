"""GPU generation speed: diffusers' defaults vs the project's generate settings.

    python benchmarks/gpu_generate.py [--images 16] [--batch 8] [--precision bf16] [--compile]
    python benchmarks/gpu_generate.py --smoke     # tiny model on the CPU: the script works

The model is a random-weight pipeline built from Stable Diffusion 1.5's real component
configs (UNet 320/640/1280/1280 with cross-attention 768, CLIP ViT-L/14 text encoder, VAE
128/256/512/512): the same compute as SD 1.5 at 512x512, without downloading weights.
It is saved and loaded back through the project's own ``load_pipeline``.

Prints images/s, 25 DDIM steps, guidance 7.5 (two UNet passes per step), for:
1. diffusers' defaults: float32, one image per call (SDPA attention is already the
   default with torch 2);
2. the project's generate settings (``generation.precision``, ``batch_size``, ``compile``;
   channels-last on CUDA): ``sdcnn.generate.pipeline.prepare_for_device`` + ``generate_images``;
and the UNet's model FLOPs per image (torch.utils.flop_counter, 2 per multiply-add) against
the GPU's bf16 peak (its dense spec figure, and an 8192^3 bf16 matmul measured here).
Also the CNN (``sdcnn.classify.cnn``) on the GPU vs the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# dense bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets
SPEC_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 80GB HBM3": 989.4,  # SXM
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}

SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "cross_attention_dim": 768, "attention_head_dim": 8,
}  # fmt: skip
SD15_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": (128, 256, 512, 512), "sample_size": 512,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
}  # fmt: skip
SD15_TEXT = {
    "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "max_position_embeddings": 77, "vocab_size": 49408,
    "hidden_act": "quick_gelu", "projection_dim": 768,
}  # fmt: skip


def sd15_pipeline(device: str):  # noqa: ANN201
    """A random-weight StableDiffusionPipeline with SD 1.5's component configs."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdcnn.demo.model import build_demo_pipeline

    demo = build_demo_pipeline(seed=0)  # its byte-level tokenizer and DDIM scheduler
    torch.manual_seed(0)
    with torch.device(device):
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
        unet, vae = UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=demo.tokenizer, unet=unet,
        scheduler=demo.scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def images_per_second(run, n_images: int, batch: int, device: str) -> float:  # noqa: ANN001
    run(batch)  # warm-up: kernels chosen, compiled, caches filled
    synchronize(device)
    started = time.perf_counter()
    for _ in range(0, n_images, batch):
        run(batch)
    synchronize(device)
    return n_images / (time.perf_counter() - started)


def unet_flops_per_step(pipeline, size: int, device: str) -> int:  # noqa: ANN001
    """Model FLOPs of one UNet call for ONE image with classifier-free guidance (batch 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipeline.unet
    latents = torch.zeros(2, 4, size // 8, size // 8, device=device, dtype=unet.dtype)
    context = torch.zeros(2, 77, unet.config.cross_attention_dim, device=device, dtype=unet.dtype)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        unet(latents, torch.tensor(500, device=device), encoder_hidden_states=context)
    return counter.get_total_flops()


def measured_bf16_tflops() -> float:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * repeats / (time.perf_counter() - started) / 1e12


def cnn_rates(device: str) -> dict[str, float]:
    import torch

    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.prediction import predict_torch
    from sdcnn.classify.weights import init_weights

    model = FluxCNN(init_weights(seed=0, in_channels=1, image_size=224, n_labels=10))
    batch = torch.rand(64, 1, 224, 224).numpy()
    rates = {}
    for where in ("cpu", device) if device != "cpu" else ("cpu",):
        predict_torch(model, batch[:8], where)
        started = time.perf_counter()
        predict_torch(model, batch, where)
        rates[where] = len(batch) / (time.perf_counter() - started)
    return rates


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="bf16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.batch, args.steps, args.size = 2, 2, 2, 64

    from sdcnn.workflow.step import set_hub_mode

    set_hub_mode(offline=True)  # quiet, and never a network request
    import torch

    from sdcnn.demo.model import save_demo_pipeline
    from sdcnn.generate.model_source import ModelSource
    from sdcnn.generate.pipeline import (  # fmt: skip
        GenerationSettings,
        PromptSpec,
        diffusion_dtype,
        generate_images,
        load_pipeline,
        prepare_for_device,
    )

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if device == "cpu" and not args.smoke:
        sys.exit("no CUDA device: run this on a GPU machine, or use --smoke to check the script")
    prompt = PromptSpec("bench", "A futuristic city at sunset", "", args.images)
    print(f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU (smoke test)'}, "
          f"torch {torch.__version__}; {args.images} images {args.size}x{args.size}, "
          f"{args.steps} steps, guidance 7.5")  # fmt: skip

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        if args.smoke:
            save_demo_pipeline(folder, seed=0)
            defaults = load_pipeline(
                ModelSource("local", str(folder), "demo"), device=device,
                dtype=torch.float32, scheduler="ddim", allow_download=False,
            )  # fmt: skip
        else:
            defaults = sd15_pipeline(device)
            defaults.save_pretrained(folder, safe_serialization=True)
        defaults.set_progress_bar_config(disable=True)
        unet_flops = unet_flops_per_step(defaults, args.size, device) * args.steps
        plain = GenerationSettings(
            steps=args.steps, guidance_scale=7.5, height=args.size, width=args.size,
            scheduler="ddim", base_seed=0, threads=torch.get_num_threads(), precision="fp32",
        )  # fmt: skip
        rows = {
            "diffusers defaults (fp32, batch 1)": images_per_second(
                lambda b: generate_images(defaults, prompt, list(range(b)), plain),
                args.images if not args.smoke else 2,
                1,
                device,
            )  # fmt: skip
        }
        defaults = None  # free its memory before the next pipeline
        if device == "cuda":
            torch.cuda.empty_cache()
        dtype = getattr(torch, diffusion_dtype(args.precision, device))
        variants = [(f"project: {args.precision}, channels-last, batch {args.batch}", False)]
        if args.compile:
            variants.append(("project: as above + torch.compile", True))
        for name, compile_unet in variants:
            settings = dataclasses.replace(
                plain, precision="auto", batch_size=args.batch, compile=compile_unet
            )
            pipeline = prepare_for_device(
                load_pipeline(
                    ModelSource("local", str(folder), "sd15-random"), device=device,
                    dtype=dtype, scheduler="ddim", allow_download=False,
                ),
                device, compile_unet,
            )  # fmt: skip
            pipeline.set_progress_bar_config(disable=True)
            rows[name] = images_per_second(
                lambda b, p=pipeline, s=settings: generate_images(p, prompt, list(range(b)), s),
                args.images, args.batch, device,
            )  # fmt: skip
            pipeline = None
    base = next(iter(rows.values()))
    peak_spec = next(
        (tflops for name, tflops in SPEC_BF16_TFLOPS.items()
         if device == "cuda" and name in torch.cuda.get_device_name()), None,
    )  # fmt: skip
    peak_measured = measured_bf16_tflops() if device == "cuda" else None
    print(f"UNet: {unet_flops / 1e9:.1f} GFLOP per image ({args.steps} steps x 2 passes)")
    for name, rate in rows.items():
        line = f"{name:52s} {rate:8.3f} images/s  {rate / base:5.2f}x defaults"
        achieved = rate * unet_flops / 1e12
        line += f"  UNet {achieved:7.1f} TFLOP/s"
        if peak_spec:
            line += f"  {100 * achieved / peak_spec:4.1f}% of {peak_spec:.0f} (spec bf16)"
        if peak_measured:
            line += f", {100 * achieved / peak_measured:4.1f}% of {peak_measured:.0f} (matmul)"
        print(line)
    print("goal: >= 3x the defaults, >= 35% of the bf16 peak on the UNet")
    rates = cnn_rates(device)
    print(
        "CNN (batch 64, 224x224):",
        ", ".join(f"{where} {r:.0f} images/s" for where, r in rates.items()),
    )
    print(f"CPU threads: {torch.get_num_threads()} of {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
