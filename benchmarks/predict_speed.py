"""Predict speed (torch backend): the step vs a raw eager torch loop (goal: >= 1.0x).

    .venv/bin/python benchmarks/predict_speed.py [--images 64] [--threads 1] [--repeats 5]

Both classify the same .npy tensors (1x224x224 float32) with the same network and
the same torch thread count:
- raw loop: np.load + one eager forward per image (batch 1) of the network written the
  plain way, as an ``nn.Sequential`` of Conv2d/ReLU/MaxPool2d/Flatten/Linear/Softmax;
- the step's function, ``sdcnn.classify.prediction.predict_prompt`` (torch): loads and checks every
  tensor, runs the network (channels-last, one image per forward), and writes the
  prediction JSON with sha256 of every input.
It also prints the GFLOP/s reached (FLOPs counted by torch.utils.flop_counter, 2 per
multiply-add) against this CPU's fp32 peak. Everything stays fp32: the backends must
agree to 1e-5.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, describe, machine, timed

PEAK_GFLOPS = 2 * 2.6 * 64  # 2 cores x 2.6 GHz x 64 fp32 FLOP/cycle (2 AVX-512 FMA units)


def plain_network(weights):  # noqa: ANN001, ANN201
    """The same network as a plain nn.Sequential (NCHW, relu before pooling)."""
    import torch
    from torch import nn

    from sdcnn.classify.cnn import correlation_kernel

    tensors = weights.tensors
    conv1 = nn.Conv2d(weights.in_channels, 16, 3, padding=1)
    conv2 = nn.Conv2d(16, 32, 3, padding=1)
    dense = nn.Linear(weights.n_features, weights.n_labels)
    with torch.no_grad():
        conv1.weight.copy_(correlation_kernel(tensors["conv1.weight"]))
        conv1.bias.copy_(torch.from_numpy(tensors["conv1.bias"]))
        conv2.weight.copy_(correlation_kernel(tensors["conv2.weight"]))
        conv2.bias.copy_(torch.from_numpy(tensors["conv2.bias"]))
        dense.weight.copy_(torch.from_numpy(tensors["dense.weight"]))
        dense.bias.copy_(torch.from_numpy(tensors["dense.bias"]))
    layers = [conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), dense, nn.Softmax(dim=1)).eval()


def model_flops(model, size: int) -> int:  # noqa: ANN001
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 1, size, size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.prediction import predict_prompt
    from sdcnn.classify.weights import init_weights, save_weights

    torch.set_num_threads(args.threads)
    labels = [f"label{i}" for i in range(10)]
    weights = init_weights(seed=0, in_channels=1, image_size=args.size, n_labels=len(labels))
    model = plain_network(weights)
    flops = model_flops(model, args.size)
    with torch.inference_mode():
        probe = torch.rand(4, 1, args.size, args.size)
        agreement = (model(probe) - FluxCNN(weights)(probe)).abs().max().item()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        save_weights(scratch / "w.safetensors", weights)
        (scratch / "tensors").mkdir()
        stems = [f"bench_{i:03d}" for i in range(args.images)]
        for stem in stems:
            tensor = rng.random((1, args.size, args.size), dtype=np.float32)
            np.save(scratch / "tensors" / f"{stem}.npy", tensor)
        paths = [scratch / "tensors" / f"{stem}.npy" for stem in stems]

        def raw_loop() -> None:
            with torch.inference_mode():
                for path in paths:
                    model(torch.from_numpy(np.load(path, allow_pickle=False))[None])

        def raw_forward_only(batch: torch.Tensor) -> None:
            with torch.inference_mode():
                for index in range(batch.shape[0]):
                    model(batch[index : index + 1])

        def step() -> None:
            predict_prompt(
                backend="torch",
                julia_project="julia",
                prompt_id="bench",
                tensor_dir=str(scratch / "tensors"),
                image_ids=stems,
                weights_path=str(scratch / "w.safetensors"),
                labels=labels,
                output_path=str(scratch / "bench.json"),
                gpus=0,
                threads=args.threads,
            )

        batch = torch.from_numpy(np.stack([np.load(path, allow_pickle=False) for path in paths]))
        raw_loop()  # warm up (oneDNN primitive caches)
        times = {
            "raw eager loop (np.load + batch-1 forward)": timed(raw_loop, args.repeats),
            "raw forward only (batch 1, tensors in memory)": timed(
                lambda: raw_forward_only(batch), args.repeats
            ),
            "predict step (checks + forward + JSON)": timed(step, args.repeats),
        }
    raw_rate = args.images / min(next(iter(times.values())))
    print(machine())
    print(
        f"{args.images} tensors 1x{args.size}x{args.size}, torch {torch.__version__}, "
        f"{args.threads} thread(s); {flops / 1e9:.3f} GFLOP per image (2 FLOP per multiply-add)"
    )
    print(f"plain network vs sdcnn.classify.cnn.FluxCNN: max |difference| {agreement:.1e}")
    for name, runs in times.items():
        rate = args.images / min(runs)
        gflops = rate * flops / 1e9
        print(
            f"{name:48s} {describe(runs)}  {rate:7.1f} images/s  {rate / raw_rate:.2f}x raw  "
            f"{gflops:6.1f} GFLOP/s ({100 * gflops / PEAK_GFLOPS:.0f}% of {PEAK_GFLOPS:.0f} peak)"
        )
    print("goal: the predict step >= 1.0x the raw loop")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
