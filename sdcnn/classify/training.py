"""Training the CNN on the labelled prompts' images: the train_classifier step.

``train_classifier(source, settings, outputs)`` writes the weights (the contract's format,
docs/equivalence.md, so both backends read them) and a metrics document (the per-epoch
curve; the held-out accuracy, per-label precision and recall, confusion matrix), and
returns the metrics; ``sdcnn.reporting.figures.write_training_figures`` draws them.

Every ``holdout_every``-th image of a prompt (indices ``holdout_every - 1``, ...) is held
out, so adding images never moves one between the splits.  The network is the predict
step's (``sdcnn.classify.cnn.FluxCNN``), initialised as ``init_weights`` does and trained
with Adam on the cross-entropy, seeded, in a fixed order, with deterministic algorithms.
It trains in float64 and writes float32: the CPUs' kernels sum in different orders, and in
float32 those last-bit differences grow over the epochs (up to 0.2 in a weight); in
float64 they stay below float32's rounding, so the same tensors give the same weights'
bytes on every CPU measured (docs/reproducibility.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sdcnn.classify.metrics import classification_metrics
from sdcnn.classify.weights import CNNWeights, init_weights
from sdcnn.core.errors import StepError
from sdcnn.core.naming import HOLDOUT, TRAIN, image_ids, split_of
from sdcnn.core.shards import ShardLayout

if TYPE_CHECKING:
    from sdcnn.classify.cnn import FluxCNN

log = logging.getLogger(__name__)

# the precision training computes in (module docstring); the weights file is float32
TRAINING_DTYPE = "float64"

METRICS_SCHEMA = "sdcnn-training/1"


@dataclass(frozen=True)
class TrainingSettings:
    """The config's ``training``: everything that decides the trained weights' bytes."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    holdout_every: int
    threads: int
    augment: bool = True  # each epoch, each image mirrored and shifted at random

    @classmethod
    def from_config(cls, training: Mapping[str, Any]) -> TrainingSettings:
        return cls(**{name: training[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LabelledImages:
    tensors: np.ndarray  # float32 NCHW
    labels: np.ndarray  # int64 label indices
    image_ids: list[str]


@dataclass(frozen=True)
class LabelledPrompts:
    """The labelled prompts whose images the CNN trains on."""

    tensor_dirs: Mapping[str, str | Path]  # shard -> its tensor folder
    prompts: Sequence[Mapping[str, Any]]  # each: prompt_id, label, n_images, shard
    labels: Sequence[str]  # the classifier's labels, in output order
    layout: ShardLayout


@dataclass(frozen=True)
class TrainingOutputs:
    """The train_classifier step's files."""

    weights: str | Path
    metrics: str | Path


def labelled_images(source: LabelledPrompts, holdout_every: int) -> dict[str, LabelledImages]:
    """The train and held-out images of ``source``'s prompts, from their shards' tensor
    folders."""
    from sdcnn.preprocess.tensors import load_tensor

    parts: dict[str, tuple[list[np.ndarray], list[int], list[str]]] = {
        TRAIN: ([], [], []),
        HOLDOUT: ([], [], []),
    }
    for prompt in source.prompts:
        folder = source.layout.folder(source.tensor_dirs[prompt["shard"]], prompt["prompt_id"])
        for index, stem in enumerate(image_ids(prompt["prompt_id"], prompt["n_images"])):
            tensors, targets, ids = parts[split_of(index, holdout_every)]
            tensors.append(load_tensor(folder / f"{stem}.npy"))
            targets.append(source.labels.index(prompt["label"]))
            ids.append(stem)
    if not parts[TRAIN][0]:
        raise StepError(
            "training: no image to train on (label some prompts, and give them more "
            "than training.holdout_every - 1 images)"
        )
    return {
        split: LabelledImages(
            np.stack(tensors) if tensors else np.zeros((0, 0, 0, 0), np.float32),
            np.array(targets, dtype=np.int64),
            ids,
        )
        for split, (tensors, targets, ids) in parts.items()
    }


def trainable(weights: CNNWeights, dtype: str = TRAINING_DTYPE) -> FluxCNN:
    """The predict step's network (sdcnn.classify.cnn) with ``weights`` as parameters that take
    gradients, held and computed in ``dtype``, on NCHW feature maps; its ``weights()``
    rounds to the weights file's float32."""
    from sdcnn.classify.cnn import FluxCNN

    return FluxCNN(weights, dtype=dtype, trainable=True, channels_last=False)


def accuracy(model: FluxCNN, images: LabelledImages) -> float | None:
    predicted = predictions(model, images)
    return None if predicted is None else float((predicted == images.labels).mean())


def predictions(model: FluxCNN, images: LabelledImages, chunk: int = 64) -> np.ndarray | None:
    import torch

    if not len(images.labels):
        return None
    with torch.inference_mode():
        logits = [
            model.logits(torch.from_numpy(images.tensors[start : start + chunk]))
            for start in range(0, len(images.labels), chunk)
        ]
    return torch.cat(logits).argmax(dim=1).numpy()


def train(
    data: Mapping[str, LabelledImages], labels: Sequence[str], settings: TrainingSettings
) -> tuple[CNNWeights, list[dict[str, Any]]]:
    """Train from the Glorot start of ``settings.seed``; the weights and the curve."""
    import torch

    torch.set_num_threads(settings.threads)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(data, labels, settings)
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _shift_slices(offset: int, side: int) -> tuple[slice, slice]:
    """(source, destination) along one axis for a shift by ``offset`` pixels."""
    if offset >= 0:
        return slice(0, side - offset), slice(offset, side)
    return slice(-offset, side), slice(0, side + offset)


def augmented(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image mirrored left-right or not, and shifted by up to a quarter of its side,
    the uncovered part filled with its border's median (the background): what a picture
    shows stays what it shows, wherever it is, so the classifier learns that."""
    out = np.empty_like(images)
    side = images.shape[-1]
    reach = max(1, side // 8)
    for index, image in enumerate(images):
        if rng.random() < 0.5:
            image = image[..., ::-1]
        dy, dx = rng.integers(-reach, reach + 1, size=2)
        border = np.concatenate([image[..., 0, :], image[..., -1, :]], axis=-1)
        fill = np.median(border, axis=-1)[:, None, None]
        shifted = np.broadcast_to(fill, image.shape).copy()
        (ys, yd), (xs, xd) = _shift_slices(dy, side), _shift_slices(dx, side)
        shifted[:, yd, xd] = image[:, ys, xs]
        out[index] = shifted
    return out


def _train(
    data: Mapping[str, LabelledImages], labels: Sequence[str], settings: TrainingSettings
) -> tuple[CNNWeights, list[dict[str, Any]]]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(settings.seed)
    order = np.random.default_rng(settings.seed)
    train_set = data[TRAIN]
    channels, size = train_set.tensors.shape[1], train_set.tensors.shape[2]
    model = trainable(init_weights(settings.seed, channels, size, len(labels)))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    # the learning rate falls along a half cosine to 0: the last epochs settle the weights
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    images = torch.from_numpy(train_set.tensors)
    targets = torch.from_numpy(train_set.labels)
    curve = []
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        permutation = torch.from_numpy(order.permutation(len(targets)))
        epoch_images = (
            torch.from_numpy(augmented(train_set.tensors, order)) if settings.augment else images
        )
        total = 0.0
        for start in range(0, len(targets), settings.batch_size):
            batch = permutation[start : start + settings.batch_size]
            optimizer.zero_grad()
            logits = model.logits(epoch_images[batch])
            loss = F.cross_entropy(logits, targets[batch], reduction="sum")
            (loss / len(batch)).backward()
            optimizer.step()
            total += float(loss.detach())
        schedule.step()
        point = {
            "epoch": epoch,
            "loss": total / len(targets),
            "train_accuracy": accuracy(model, train_set),
            "holdout_accuracy": accuracy(model, data[HOLDOUT]),
        }
        curve.append(point)
        log.info(
            "epoch %d/%d: loss %.4f, train accuracy %.3f, held-out accuracy %s (%.1f s)",
            epoch,
            settings.epochs,
            point["loss"],
            point["train_accuracy"],
            "n/a" if point["holdout_accuracy"] is None else f"{point['holdout_accuracy']:.3f}",
            time.perf_counter() - started,
        )
    return model.weights(labels), curve


PLAN_SCHEMA = "sdcnn-training-plan/1"


def write_plan(path: str | Path, params: Mapping[str, Any]) -> None:
    """training_plan's output: the params that decide the trained weights, as JSON."""
    from sdcnn.core.fileio import write_json_atomic

    write_json_atomic(path, {"schema": PLAN_SCHEMA, **params})


def read_plan(path: str | Path) -> dict[str, Any]:
    import json

    plan = json.loads(Path(path).read_text(encoding="utf-8"))
    if plan.get("schema") != PLAN_SCHEMA:
        raise StepError(f"{path}: not a training plan ({PLAN_SCHEMA})")
    return plan


def train_classifier(
    source: LabelledPrompts, settings: TrainingSettings, outputs: TrainingOutputs
) -> dict[str, Any]:
    """The train_classifier step end to end; returns the metrics document it wrote."""
    from sdcnn.classify.weights import save_weights
    from sdcnn.core.fileio import write_json_atomic
    from sdcnn.core.kernels import kernel_environment

    labels = source.labels
    data = labelled_images(source, settings.holdout_every)
    log.info(
        "training on %d images, %d held out, %d labels: %s",
        len(data[TRAIN].labels),
        len(data[HOLDOUT].labels),
        len(labels),
        ", ".join(labels),
    )
    weights, curve = train(data, labels, settings)
    model = trainable(weights)
    held_out = data[HOLDOUT]
    predicted = predictions(model, held_out)
    metrics = {
        "schema": METRICS_SCHEMA,
        "settings": asdict(settings),
        "dtype": TRAINING_DTYPE,
        "kernels": kernel_environment("cpu"),
        "labels": list(labels),
        "n_train": len(data[TRAIN].labels),
        "holdout": classification_metrics(
            [labels[i] for i in held_out.labels],
            [] if predicted is None else [labels[i] for i in predicted],
            labels,
        ),
        "curve": curve,
    }
    save_weights(outputs.weights, weights)
    write_json_atomic(outputs.metrics, metrics)
    return metrics
