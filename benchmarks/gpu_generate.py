"""GPU generation speed: diffusers' defaults vs the project's generate settings.

    python benchmarks/gpu_generate.py [--images 16] [--batch 8] [--precision bf16] [--compile]
    python benchmarks/gpu_generate.py --smoke     # tiny model on the CPU: the script works
    python benchmarks/gpu_generate.py --family flux-dev [--device cpu]   # one family
    python benchmarks/gpu_generate.py --model models/sd35 [--steps 28] [--size 1024]

``--family NAME`` (a tiny random-weight pipeline of tests/support/families.py) or ``--model
PATH`` (a diffusers folder, e.g. a real checkpoint) measures the project's generate path for
that family: ``load_pipeline`` (the model's own scheduler, ``generation.precision`` auto:
the family's dtype), ``prepare_for_device``, ``run_pipeline``; it prints the load time, the
time per image, the peak memory, and the FLOPs per image: the denoiser's calls of a real
pipeline call, each counted once more under torch.utils.flop_counter with its very inputs
(so from the loaded model's own configs: a real checkpoint's with ``--model``), and the
whole call's (text encoders and VAE too). ``--device cpu`` runs it on the CPU (a smoke test).

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
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (128, 256, 512, 512),
    "sample_size": 512,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
}
SD15_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}


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
        vae=vae,
        text_encoder=text,
        tokenizer=demo.tokenizer,
        unet=unet,
        scheduler=demo.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


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


def denoiser_calls(pipeline, run):  # noqa: ANN001, ANN201
    """The denoiser's calls during ``run()``: their number and the first one's inputs."""
    from sdcnn.generate.families import denoiser

    seen: list[tuple] = []
    handle = denoiser(pipeline).register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args, kwargs)), with_kwargs=True
    )
    try:
        run()
    finally:
        handle.remove()
    return len(seen), seen[0]


def counted_flops(run) -> int:  # noqa: ANN001
    """Model FLOPs of ``run()`` (2 per multiply-add), under torch.utils.flop_counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # no_grad, not inference_mode: the counter's module tracker hooks inputs that require
    # grad (a parameter passed on, as in Sana), which needs autograd
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return counter.get_total_flops()


def peak_memory_gib(device: str) -> float:
    """The GPU's peak allocated memory, or the process's peak resident set on the CPU."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def family_main(args: argparse.Namespace) -> None:
    """One family's generate path: load time, time per image, peak memory, FLOPs per image."""
    from sdcnn.core.environment import set_hub_mode

    set_hub_mode(offline=True)
    import torch

    from sdcnn.generate.families import denoiser, denoiser_key
    from sdcnn.generate.model_source import ModelSource, model_layout
    from sdcnn.generate.pipeline import (
        GenerationSettings,
        PromptSpec,
        generation_dtype,
        load_pipeline,
        prepare_for_device,
        resolve_size,
        run_pipeline,
        vae_tiling_on,
    )

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: use --device cpu for a smoke test")
    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            folder = Path(args.model)
        else:
            from tests.support.families import build_family

            folder = build_family(args.family, Path(scratch) / args.family)
        model = ModelSource("local", str(folder), args.model or args.family)
        class_name = getattr(model_layout(model), "class_name", None)
        dtype = generation_dtype(args.precision, device, class_name)
        side = args.size  # None: the model's native size
        settings = resolve_size(
            GenerationSettings(
                steps=args.steps,
                guidance_scale=args.guidance,
                height=side,
                width=side,
                scheduler="default",
                base_seed=0,
                threads=torch.get_num_threads(),
                precision=args.precision,
                batch_size=args.batch,
                compile=args.compile,
                offload=args.offload,
            ),
            model,
        )
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        pipeline = prepare_for_device(
            load_pipeline(
                model,
                device=device,
                dtype=dtype,
                scheduler="default",
                allow_download=False,
                offload=args.offload,
            ),
            device,
            args.compile,
            vae_tiling_on(settings),
        )
        synchronize(device)
        load_s = time.perf_counter() - started
        pipeline.set_progress_bar_config(disable=True)
        prompt = PromptSpec("bench", "A futuristic city at sunset", "", args.images)

        def call(batch: int) -> None:
            run_pipeline(pipeline, prompt, list(range(batch)), settings)

        calls, (call_args, call_kwargs) = denoiser_calls(pipeline, lambda: call(1))
        module = denoiser(pipeline)
        step_flops = counted_flops(lambda: module(*call_args, **call_kwargs))
        image_flops = counted_flops(lambda: call(1))
        rate = images_per_second(call, args.images, args.batch, device)
        peak = peak_memory_gib(device)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(
        f"{model.name} ({class_name}, {denoiser_key(pipeline)}) on {name}, "
        f"{str(dtype).removeprefix('torch.')}, torch {torch.__version__}"
    )
    print(
        f"{settings.height}x{settings.width}, {settings.steps} steps, guidance "
        f"{settings.guidance_scale}, batch {args.batch}, {args.images} images"
    )
    where = "GPU" if device == "cuda" else "CPU resident"
    print(
        f"load {load_s:.2f} s; {1 / rate:.3f} s per image ({rate:.2f} images/s); "
        f"peak memory {peak:.2f} GiB ({where})"
    )
    per_image = step_flops * calls
    print(
        f"denoiser: {calls} calls an image x {step_flops / 1e9:.3f} GFLOP = "
        f"{per_image / 1e9:.3f} GFLOP per image; whole call {image_flops / 1e9:.3f} "
        f"GFLOP per image; {per_image * rate / 1e12:.3f} TFLOP/s in the denoiser"
    )


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, help="512; with --family/--model: native")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp16", "bf16", "fp32"],
        help="bf16; with --family/--model: auto (the family's)",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--family", help="a tiny family of tests/support/families.py")
    parser.add_argument("--model", help="a diffusers folder (a real checkpoint)")
    parser.add_argument("--device", choices=["cuda", "cpu"], help="with --family/--model")
    parser.add_argument("--guidance", type=float, default=7.5, help="with --family/--model")
    parser.add_argument("--offload", default="none", choices=["none", "model", "sequential"])
    args = parser.parse_args()
    if args.family or args.model:
        args.precision = args.precision or "auto"
        if "--images" not in sys.argv and args.device == "cpu":
            args.images, args.batch = 2, 1
        family_main(args)
        return
    args.precision, args.size = args.precision or "bf16", args.size or 512
    if args.smoke:
        args.images, args.batch, args.steps, args.size = 2, 2, 2, 64

    from sdcnn.core.environment import set_hub_mode

    set_hub_mode(offline=True)  # quiet, and never a network request
    import torch

    from sdcnn.demo.model import save_demo_pipeline
    from sdcnn.generate.model_source import ModelSource
    from sdcnn.generate.pipeline import (
        GenerationSettings,
        PromptSpec,
        dtype_name,
        generate_images,
        load_pipeline,
        prepare_for_device,
    )

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if device == "cpu" and not args.smoke:
        sys.exit("no CUDA device: run this on a GPU machine, or use --smoke to check the script")
    prompt = PromptSpec("bench", "A futuristic city at sunset", "", args.images)
    print(
        f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU (smoke test)'}, "
        f"torch {torch.__version__}; {args.images} images {args.size}x{args.size}, "
        f"{args.steps} steps, guidance 7.5"
    )

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        if args.smoke:
            save_demo_pipeline(folder, seed=0)
            defaults = load_pipeline(
                ModelSource("local", str(folder), "demo"),
                device=device,
                dtype=torch.float32,
                scheduler="ddim",
                allow_download=False,
            )
        else:
            defaults = sd15_pipeline(device)
            defaults.save_pretrained(folder, safe_serialization=True)
        defaults.set_progress_bar_config(disable=True)
        unet_flops = unet_flops_per_step(defaults, args.size, device) * args.steps
        plain = GenerationSettings(
            steps=args.steps,
            guidance_scale=7.5,
            height=args.size,
            width=args.size,
            scheduler="ddim",
            base_seed=0,
            threads=torch.get_num_threads(),
            precision="fp32",
        )
        rows = {
            "diffusers defaults (fp32, batch 1)": images_per_second(
                lambda b: generate_images(defaults, prompt, list(range(b)), plain),
                args.images if not args.smoke else 2,
                1,
                device,
            )
        }
        defaults = None  # free its memory before the next pipeline
        if device == "cuda":
            torch.cuda.empty_cache()
        dtype = getattr(torch, dtype_name(args.precision, device))
        variants = [(f"project: {args.precision}, channels-last, batch {args.batch}", False)]
        if args.compile:
            variants.append(("project: as above + torch.compile", True))
        for name, compile_unet in variants:
            settings = dataclasses.replace(
                plain, precision="auto", batch_size=args.batch, compile=compile_unet
            )
            pipeline = prepare_for_device(
                load_pipeline(
                    ModelSource("local", str(folder), "sd15-random"),
                    device=device,
                    dtype=dtype,
                    scheduler="ddim",
                    allow_download=False,
                ),
                device,
                compile_unet,
            )
            pipeline.set_progress_bar_config(disable=True)
            rows[name] = images_per_second(
                lambda b, p=pipeline, s=settings: generate_images(p, prompt, list(range(b)), s),
                args.images,
                args.batch,
                device,
            )
            pipeline = None
    base = next(iter(rows.values()))
    peak_spec = next(
        (
            tflops
            for name, tflops in SPEC_BF16_TFLOPS.items()
            if device == "cuda" and name in torch.cuda.get_device_name()
        ),
        None,
    )
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
