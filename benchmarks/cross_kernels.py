"""Reproducibility across machines: what another CPU's kernels change (docs/reproducibility.md).

    .venv/bin/python benchmarks/cross_kernels.py [--pictures 108] [--epochs 200] [--runs]

1. Training: the default config's classifier training (its settings; drawn shape pictures
   at 32x32 as the images) in float32 and in float64 (what sdcnn.classify.training does), each
   natively and under the other kernels (sdcnn.workflow.reproducibility.OTHER_KERNELS: ATen without
   SIMD, oneDNN limited to SSE4.1, ...): the time of each, and how far the weights of the
   two kernel paths are apart.
2. With ``--runs``: the default config run end to end natively and under the other kernels
   (image store off), compared by ``sdcnn.workflow.reproducibility.compare_runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, copy_workflow, machine

from sdcnn.workflow.reproducibility import compare_runs, other_kernels_environment

WORKER = "--train-worker"  # this script, run again in a child: one training, its weights out


def train_once(dtype: str, pictures: int, epochs: int, out: Path) -> None:
    """Train as the default config says, in ``dtype``; weights to ``out`` (.npz)."""
    import yaml

    from sdcnn.classify import training
    from sdcnn.demo.pictures import draw_picture
    from sdcnn.preprocess.image_to_tensor import to_tensor

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    labels = config["classifier"]["labels"]
    size = config["preprocess"]["size"]
    tensors, targets = [], []
    for seed in range(pictures):
        rgb, prompt = draw_picture(seed)
        tensors.append(to_tensor(np.ascontiguousarray(rgb[..., ::-1]), size, True, "auto"))
        targets.append(labels.index(prompt.split()[-1]))
    data = {
        "train": training.LabelledImages(np.stack(tensors), np.array(targets), []),
        "holdout": training.LabelledImages(np.zeros((0, 1, 1, 1), np.float32), np.array([]), []),
    }
    settings = training.TrainingSettings.from_config({**config["training"], "epochs": epochs})
    original = training.trainable
    training.trainable = lambda weights: original(weights, dtype)
    started = time.perf_counter()
    weights, _ = training.train(data, labels, settings)
    seconds = time.perf_counter() - started
    np.savez(out, **weights.tensors)
    import torch

    print(json.dumps({"seconds": seconds, "capability": torch.backends.cpu.get_cpu_capability()}))


def child(dtype: str, pictures: int, epochs: int, out: Path, other: bool) -> dict:
    environment = other_kernels_environment(os.environ) if other else dict(os.environ)
    command = [sys.executable, __file__, WORKER, dtype, str(pictures), str(epochs), str(out)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def training_precision(pictures: int, epochs: int) -> None:
    print(f"training: {pictures} pictures, {epochs} epochs, the default config's settings")
    with tempfile.TemporaryDirectory() as scratch:
        for dtype in ("float32", "float64"):
            runs = {}
            for other in (False, True):
                out = Path(scratch) / f"{dtype}-{other}.npz"
                timing = child(dtype, pictures, epochs, out, other)
                runs[other] = (timing, np.load(out, allow_pickle=False))
            (native, a), (flipped, b) = runs[False], runs[True]
            apart = max(float(np.abs(a[name] - b[name]).max()) for name in a.files)
            print(
                f"  {dtype}: {native['seconds']:.1f} s ({native['capability']}), "
                f"{flipped['seconds']:.1f} s ({flipped['capability']}); "
                f"weights apart by at most {apart:.3g}"
            )


def run_default(workdir: Path, other: bool) -> Path:
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    copy_workflow(workdir, {**config, "store": {"enabled": False}})
    environment = other_kernels_environment(os.environ) if other else dict(os.environ)
    started = time.perf_counter()
    command = [sys.executable, "-m", "snakemake", "--cores", "2"]
    result = subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"the default run failed:\n{result.stderr[-3000:]}")
    print(f"  {'other' if other else 'native'} kernels: {time.perf_counter() - started:.0f} s")
    return workdir / "results"


def default_runs() -> None:
    print("the default config, end to end (image store off):")
    with tempfile.TemporaryDirectory() as scratch:
        native = run_default(Path(scratch) / "native", other=False)
        other = run_default(Path(scratch) / "other", other=True)
        differences = compare_runs(native, other)
        print("  " + differences.report().replace("\n", "\n  "))
        broken = differences.violations()
        verdict = "kept" if not broken else "BROKEN: " + "; ".join(broken)
        print(f"  cross-machine contract: {verdict}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        dtype, pictures, epochs, out = sys.argv[2:6]
        train_once(dtype, int(pictures), int(epochs), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=108, help="training pictures")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--runs", action="store_true", help="also run the default config twice")
    args = parser.parse_args()
    print(machine())
    training_precision(args.pictures, args.epochs)
    if args.runs:
        default_runs()


if __name__ == "__main__":
    main()
