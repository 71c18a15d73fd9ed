"""Prediction: load a prompt's tensors, run the CNN, write the prediction JSON.

The JSON schema is the same for every backend:

    {"schema": "sdcnn-predictions/1", "prompt_id": ..., "backend": "torch" | "flux",
     "device": "cpu" | "cuda", "labels": [...],
     "weights": {"path": ..., "sha256": ...},
     "images": [{"image_id": ..., "tensor": ..., "tensor_sha256": ...,
                 "safety_flagged": true | false | null,
                 "probabilities": {label: p, ...}, "top_label": ..., "top_probability": p}]}

Probabilities are written with 9 significant digits, which round-trips float32.
Two backends compute them, the same network either way (docs/equivalence.md):
``torch`` here, and ``flux``, the Julia program in julia/ (``sdcnn.classify.flux_backend``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdcnn.core.device import exact_fp32_on_cuda
from sdcnn.core.errors import StepError
from sdcnn.core.fileio import dumps_json, sha256_file
from sdcnn.core.shards import PromptBatch, ShardLayout
from sdcnn.preprocess.tensors import load_batch

log = logging.getLogger(__name__)

SCHEMA = "sdcnn-predictions/1"
BACKENDS = ("torch", "flux")
BACKEND_CHOICES = (*BACKENDS, "auto")


def resolve_backend(requested: str, *, julia_found: bool, julia_project: bool = True) -> str:
    """The backend that runs for ``classifier.backend``: ``torch`` or ``flux``.

    ``auto`` is ``flux`` when ``julia`` can be run (``julia_found``) and the workflow's
    Julia project is a folder on disk (``julia_project``: not in a remote module, whose
    files Snakemake fetches one by one), else ``torch``.  ``flux`` without either is an
    error that names what is missing.
    """
    if requested not in BACKEND_CHOICES:
        raise StepError(f"classifier.backend must be one of {BACKEND_CHOICES}, not {requested!r}")
    if requested == "auto":
        return "flux" if julia_found and julia_project else "torch"
    if requested == "flux" and not julia_found:
        from sdcnn.classify.flux_backend import MISSING_JULIA

        raise StepError(MISSING_JULIA)
    if requested == "flux" and not julia_project:
        from sdcnn.classify.flux_backend import REMOTE_JULIA_PROJECT

        raise StepError(REMOTE_JULIA_PROJECT)
    return requested


# Images per forward pass on the CPU: one keeps the feature maps in cache (a whole
# prompt's batch is slower per image: benchmarks/predict_speed.py, RESULTS.md §2).
CPU_CHUNK = 1


def predict_torch(model: Any, batch: np.ndarray, device: str) -> np.ndarray:
    """Softmax probabilities (N, n_labels), float32, for an NCHW batch."""
    import torch

    exact_fp32_on_cuda(device)  # on CUDA: no TF32, deterministic algorithms
    chunk = CPU_CHUNK if device == "cpu" else len(batch)
    model = model.to(device)
    with torch.inference_mode():
        parts = [
            model(torch.from_numpy(batch[start : start + chunk]).to(device)).cpu()
            for start in range(0, len(batch), chunk)
        ]
    return torch.cat(parts).numpy()


def round_probability(value: float) -> float:
    return float(f"{value:.9g}")


def prediction_document(
    *,
    prompt_id: str,
    labels: Sequence[str],
    image_ids: Sequence[str],
    tensor_paths: Sequence[str],
    weights_path: str,
    probabilities: np.ndarray,
    backend: str,
    device: str,
    safety_flagged: Sequence[bool | None] | None = None,
    label: str | None = None,
    splits: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``safety_flagged``: each image's safety-checker verdict (sdcnn.generate.safety_checker),
    None if unknown; ``label``: what the prompt's images are meant to show, and ``splits``: each
    image's "train" or "holdout" (both None for an unlabelled prompt)."""
    if probabilities.shape != (len(image_ids), len(labels)):
        raise StepError(f"probabilities of shape {probabilities.shape} for {len(image_ids)} images")
    verdicts = list(safety_flagged) if safety_flagged is not None else [None] * len(image_ids)
    split_of = list(splits) if splits is not None and label is not None else [None] * len(image_ids)
    images = []
    for stem, tensor_path, row, flagged, split in zip(
        image_ids, tensor_paths, probabilities, verdicts, split_of, strict=True
    ):
        top = int(np.argmax(row))
        images.append(
            {
                "image_id": stem,
                "tensor": str(tensor_path),
                "tensor_sha256": sha256_file(tensor_path),
                "safety_flagged": flagged,
                "label": label,
                "split": split,
                "probabilities": {
                    label: round_probability(p)
                    for label, p in zip(labels, row.tolist(), strict=True)
                },
                "top_label": labels[top],
                "top_probability": round_probability(float(row[top])),
                "correct": None if label is None else labels[top] == label,
            }
        )
    return {
        "schema": SCHEMA,
        "prompt_id": prompt_id,
        "backend": backend,
        "device": device,
        "labels": list(labels),
        "weights": {"path": str(weights_path), "sha256": sha256_file(weights_path)},
        "images": images,
    }


def with_truth(batches: Sequence[PromptBatch], truth: Mapping[str, Any]) -> list[PromptBatch]:
    """``batches`` with each prompt's label and each image's split (the predict rule's
    ``truth`` param: {"labels": {prompt id: label or None}, "holdout_every": k})."""
    from sdcnn.core.naming import split_of

    every = truth["holdout_every"]
    return [
        dataclasses.replace(
            batch,
            label=truth["labels"].get(batch.prompt_id),
            splits=[split_of(index, every) for index in range(len(batch.image_ids))],
        )
        for batch in batches
    ]


@dataclasses.dataclass(frozen=True)
class ShardPrediction:
    """What a backend is asked to do for a shard: every prompt's batch through one model,
    one JSON each, written to ``path_of(prompt_id)``."""

    batches: Sequence[PromptBatch]
    weights_path: str
    labels: Sequence[str]
    path_of: Callable[[str], Path]
    gpus: int
    threads: int
    gpu_fallback: str = "fail"  # where CUDA is not functional: stop, or the CPU


def predict_batches_torch(shard: ShardPrediction) -> str:
    """The torch backend for a shard: one model for every prompt's batch, one JSON each.
    Returns the device it ran on."""
    import torch

    from sdcnn.classify.cnn import FluxCNN
    from sdcnn.classify.weights import check_compatible, load_weights
    from sdcnn.core.device import select_device

    torch.set_num_threads(shard.threads)
    weights = load_weights(shard.weights_path)
    device = select_device(shard.gpus, shard.gpu_fallback)
    model = FluxCNN(weights)
    for batch in shard.batches:
        tensors = load_batch(batch.tensor_paths)
        check_compatible(weights, shard.weights_path, list(shard.labels), tensors.shape[1:])
        document = prediction_document(
            prompt_id=batch.prompt_id,
            labels=shard.labels,
            image_ids=batch.image_ids,
            tensor_paths=batch.tensor_paths,
            weights_path=shard.weights_path,
            probabilities=predict_torch(model, tensors, device),
            backend="torch",
            device=device,
            safety_flagged=batch.safety_flagged,
            label=batch.label,
            splits=batch.splits,
        )
        shard.path_of(batch.prompt_id).write_bytes(dumps_json(document).encode("utf-8"))
    log.info(
        "%d prompts, %d images predicted with torch on %s",
        len(shard.batches),
        sum(len(batch.image_ids) for batch in shard.batches),
        device,
    )
    return device


def predict_shard(
    *,
    backend: str,
    batches: Sequence[PromptBatch],
    weights_path: str,
    labels: Sequence[str],
    output: str | Path,
    layout: ShardLayout,
    gpus: int,
    gpu_fallback: str = "fail",
    threads: int,
    julia_project: str | Path,
) -> None:
    """A shard's predictions with the resolved ``backend``: one model load (one Julia
    process for ``flux``) for all its prompts; ``output`` appears once all are written."""
    if backend not in BACKENDS:
        raise StepError(f"unknown prediction backend {backend!r}; one of {BACKENDS}")
    with layout.files(output, ".json") as path_of:
        shard = ShardPrediction(
            batches=batches,
            weights_path=weights_path,
            labels=labels,
            path_of=path_of,
            gpus=gpus,
            threads=threads,
            gpu_fallback=gpu_fallback,
        )
        if backend == "torch":
            predict_batches_torch(shard)
        else:
            from sdcnn.classify.flux_backend import predict_batches_flux

            predict_batches_flux(shard, project_dir=Path(julia_project))


def predict_prompt(
    *,
    backend: str,
    prompt_id: str,
    tensor_dir: str,
    image_ids: Sequence[str],
    weights_path: str,
    labels: Sequence[str],
    output_path: str,
    gpus: int,
    gpu_fallback: str = "fail",
    threads: int,
    julia_project: str | Path,
) -> dict[str, Any]:
    """One prompt's batch (a shard of one prompt); writes and returns its document."""
    batch = PromptBatch(prompt_id, list(image_ids), [f"{tensor_dir}/{s}.npy" for s in image_ids])
    predict_shard(
        backend=backend,
        batches=[batch],
        weights_path=weights_path,
        labels=labels,
        output=output_path,
        layout=ShardLayout(sharded=False),
        gpus=gpus,
        gpu_fallback=gpu_fallback,
        threads=threads,
        julia_project=julia_project,
    )
    return json.loads(Path(output_path).read_text(encoding="utf-8"))
