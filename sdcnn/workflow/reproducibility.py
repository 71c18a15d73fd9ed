"""Two runs of one config compared: what the reproducibility contract promises.

docs/reproducibility.md states the contract.  On the same hardware and software every
output is byte-identical.  Across machines (another CPU's kernels, another GPU) the
diffusion's float32 sums run in another order, a few pixels move by a level, and what
follows from them moves a little; ``CROSS_MACHINE`` is what is promised then, and
``compare_runs`` measures two runs' ``results/`` folders against it:

    python -m sdcnn.workflow.reproducibility RUN_A/results RUN_B/results

prints the differences and exits 1 when they break the contract.  Runs on a cluster of
mixed nodes, or on a new machine, can be checked against a reference run this way.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    """What two runs of one config on different machines may differ by."""

    image_levels: int  # the largest change of any 8-bit pixel value
    probability: float  # the largest change of any probability in the summary
    # the predicted labels and the held-out accuracy are the same


# Measured with the default config (docs/reproducibility.md), OTHER_KERNELS against this
# machine's AVX2 ones: pixels moved by at most 1 level (143 values in 51 of 144 images),
# 6 tensors by 1/255 in 11 values, and the training, chaotic over its 200 epochs, made of
# those a network whose probabilities differ by up to 0.076 (0.12 in an Intel Xeon's
# run, with float32 training), with the same labels and accuracy.  The bounds are about
# twice what was measured: CPUs not measured here may differ more.
CROSS_MACHINE = Tolerances(image_levels=2, probability=0.15)


# Environment variables that make this machine compute as another CPU would.  x86-64:
# torch's ATen kernels without SIMD, oneDNN's convolutions limited to SSE4.1, MKL's
# products to SSE4.2, OpenCV's and NumPy's dispatched kernels without AVX/AVX2.  arm64:
# ATen without SVE, NumPy without its dispatched ASIMD extensions (not run here: the
# project's machines are x86-64).  The OpenBLAS knobs are left alone: some machines need
# them set to compute correctly at all.
OTHER_KERNELS_BY_ARCH = {
    "x86_64": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "OPENCV_CPU_DISABLE": "AVX,FP16,AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3",
    },
    "aarch64": {
        "ATEN_CPU_CAPABILITY": "default",
        "NPY_DISABLE_CPU_FEATURES": "ASIMDHP ASIMDDP ASIMDFHM",
    },
}
OTHER_KERNELS = OTHER_KERNELS_BY_ARCH.get(
    platform.machine().lower().replace("arm64", "aarch64").replace("amd64", "x86_64"),
    {"ATEN_CPU_CAPABILITY": "default"},
)


def other_kernels_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with every knob of OTHER_KERNELS flipped: set where it is unset, removed
    where it is set (so a run already under them is compared with the native kernels)."""
    flipped = dict(environ)
    for name, value in OTHER_KERNELS.items():
        if name in flipped:
            del flipped[name]
        else:
            flipped[name] = value
    return flipped


@dataclass
class FileDifferences:
    """How the files of one kind differ between two runs (paths relative to results/)."""

    compared: int = 0
    differing: list[str] = field(default_factory=list)
    largest: float = 0.0  # the largest absolute difference of any value
    changed_values: int = 0  # values (pixels, tensor elements) that differ

    def add(self, name: str, a: np.ndarray, b: np.ndarray) -> None:
        self.compared += 1
        if a.shape != b.shape:
            self.differing.append(name)
            self.largest = float("inf")
            return
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
        changed = int(np.count_nonzero(difference))
        if changed:
            self.differing.append(name)
            self.changed_values += changed
            self.largest = max(self.largest, float(difference.max()))

    def line(self, what: str, unit: str = "") -> str:
        if not self.differing:
            return f"{what}: {self.compared} compared, all identical"
        return (
            f"{what}: {len(self.differing)} of {self.compared} differ, {self.changed_values} "
            f"values in all, by at most {self.largest:.3g}{unit}"
        )


@dataclass
class RunDifferences:
    """Everything ``compare_runs`` measured."""

    images: FileDifferences
    tensors: FileDifferences
    weights: FileDifferences
    probability: float  # the largest change of a probability in summary.json
    labels_changed: list[str]  # image ids whose top label differs
    accuracy: tuple[float | None, float | None]  # held-out accuracy of each run
    missing: list[str]  # outputs one run has and the other lacks

    def report(self) -> str:
        return "\n".join(
            [
                self.images.line("images (PNG pixels)", " levels"),
                self.tensors.line("tensors (.npy)"),
                self.weights.line("weights (.safetensors)"),
                f"probabilities: differ by at most {self.probability:.3g}",
                f"top labels: {len(self.labels_changed)} differ"
                + (f" ({', '.join(self.labels_changed[:10])})" if self.labels_changed else ""),
                f"held-out accuracy: {self.accuracy[0]} and {self.accuracy[1]}",
                f"outputs in one run only: {len(self.missing)}"
                + (f" ({', '.join(self.missing[:10])})" if self.missing else ""),
            ]
        )

    def violations(self, tolerances: Tolerances = CROSS_MACHINE) -> list[str]:
        """What breaks the cross-machine contract; empty when nothing does."""
        broken = []
        if self.missing:
            broken.append(f"outputs in one run only: {self.missing[:10]}")
        if self.images.largest > tolerances.image_levels:
            broken.append(
                f"pixels differ by up to {self.images.largest:g} levels "
                f"(allowed {tolerances.image_levels})"
            )
        if self.probability > tolerances.probability:
            broken.append(
                f"probabilities differ by up to {self.probability:.3g} "
                f"(allowed {tolerances.probability:g})"
            )
        if self.labels_changed:
            broken.append(f"top labels differ for {self.labels_changed[:10]}")
        if self.accuracy[0] != self.accuracy[1]:
            broken.append(f"held-out accuracy {self.accuracy[0]} vs {self.accuracy[1]}")
        return broken


def _relative_files(results: Path, folder: str, pattern: str) -> set[str]:
    root = results / folder
    return {path.relative_to(results).as_posix() for path in root.rglob(pattern)}


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _weights(path: Path) -> np.ndarray:
    """Every tensor of a safetensors file, in name order, as one vector."""
    from safetensors.numpy import load_file

    tensors = load_file(path)
    return np.concatenate([tensors[name].ravel() for name in sorted(tensors)])


READERS = {
    "images": ("images", "*.png", _pixels),
    "tensors": ("tensors", "*.npy", lambda path: np.load(path, allow_pickle=False)),
    "weights": ("weights", "*.safetensors", _weights),
}


def _summary(results: Path) -> dict[str, Any]:
    return json.loads((results / "summary.json").read_text(encoding="utf-8"))


def _compare_summaries(
    a: dict[str, Any], b: dict[str, Any]
) -> tuple[float, list[str], tuple[Any, Any]]:
    rows_b = {row["image_id"]: row for row in b["rows"]}
    largest, labels_changed = 0.0, []
    for row in a["rows"]:
        other = rows_b.get(row["image_id"])
        if other is None:
            continue
        for column, value in row.items():
            if column.startswith("p_") and column in other:
                largest = max(largest, abs(float(value) - float(other[column])))
        if row["top_label"] != other["top_label"]:
            labels_changed.append(row["image_id"])
    accuracy = tuple(
        summary.get("metrics", {}).get("holdout", {}).get("accuracy") for summary in (a, b)
    )
    return largest, labels_changed, accuracy  # type: ignore[return-value]


def compare_runs(a: str | Path, b: str | Path) -> RunDifferences:
    """Compare two runs' ``results/`` folders (made from one config)."""
    a, b = Path(a), Path(b)
    kinds: dict[str, FileDifferences] = {}
    missing: list[str] = []
    for kind, (folder, pattern, read) in READERS.items():
        names_a, names_b = _relative_files(a, folder, pattern), _relative_files(b, folder, pattern)
        missing += sorted(names_a ^ names_b)
        kinds[kind] = FileDifferences()
        for name in sorted(names_a & names_b):
            kinds[kind].add(name, read(a / name), read(b / name))
    probability, labels_changed, accuracy = _compare_summaries(_summary(a), _summary(b))
    return RunDifferences(
        images=kinds["images"],
        tensors=kinds["tensors"],
        weights=kinds["weights"],
        probability=probability,
        labels_changed=labels_changed,
        accuracy=accuracy,
        missing=missing,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_a", type=Path, help="one run's results/ folder")
    parser.add_argument("results_b", type=Path, help="the other run's results/ folder")
    args = parser.parse_args(argv)
    for results in (args.results_a, args.results_b):
        if not (results / "summary.json").is_file():
            parser.error(f"{results}: no summary.json (not a finished run's results/ folder)")
    differences = compare_runs(args.results_a, args.results_b)
    print(differences.report())
    broken = differences.violations()
    print("cross-machine contract: " + ("kept" if not broken else "BROKEN: " + "; ".join(broken)))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
