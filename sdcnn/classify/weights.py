"""The CNN's weights file: one safetensors file both backends read.

Layout (all float32, C order, shapes as NumPy/PyTorch print them):

    conv1.weight  (16, C, 3, 3)     conv kernel K1[out, in, kh, kw]
    conv1.bias    (16,)
    conv2.weight  (32, 16, 3, 3)    conv kernel K2[out, in, kh, kw]
    conv2.bias    (32,)
    dense.weight  (n_labels, 32 * (S // 4) ** 2)   (out, in), the Flux/PyTorch layout
    dense.bias    (n_labels,)

The kernels are *convolution* kernels, as Flux's ``Conv`` applies them.  How each
backend maps this layout (the torch backend flips the kernels; the Flux backend
reverses their axes to (kw, kh, in, out)), the flatten order of the dense inputs,
the tensors and the prediction JSON: docs/equivalence.md, the one statement of
the contract.

safetensors holds no code, so loading a weights file can never run any.  The
header's ``__metadata__`` has one key, ``sdcnn``, whose value is a JSON object
with ``format``, ``format_version`` and, optionally, ``labels``.  (One key,
because safetensors writes several metadata keys in a random order, and the
file must be byte-reproducible.)  Files without it, e.g. saved by a user with
``safetensors.torch.save_file``, are accepted when their tensors fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_path

T = TypeVar("T")

FORMAT = "sdcnn-cnn"
FORMAT_VERSION = 1
METADATA_KEY = "sdcnn"
CONV1_CHANNELS = 16
CONV2_CHANNELS = 32
KERNEL = 3
TENSOR_NAMES = (
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "dense.weight",
    "dense.bias",
)


def dense_inputs(image_size: int) -> int:
    """Features after two 2x2 max-pools (floor, as Flux and PyTorch both do)."""
    return CONV2_CHANNELS * (image_size // 2 // 2) ** 2


def expected_shapes(in_channels: int, image_size: int, n_labels: int) -> dict[str, tuple[int, ...]]:
    return {
        "conv1.weight": (CONV1_CHANNELS, in_channels, KERNEL, KERNEL),
        "conv1.bias": (CONV1_CHANNELS,),
        "conv2.weight": (CONV2_CHANNELS, CONV1_CHANNELS, KERNEL, KERNEL),
        "conv2.bias": (CONV2_CHANNELS,),
        "dense.weight": (n_labels, dense_inputs(image_size)),
        "dense.bias": (n_labels,),
    }


@dataclass(frozen=True)
class CNNWeights:
    tensors: dict[str, np.ndarray]
    labels: list[str] | None = None  # from the file's metadata, when it records them

    @property
    def in_channels(self) -> int:
        return self.tensors["conv1.weight"].shape[1]

    @property
    def n_labels(self) -> int:
        return self.tensors["dense.weight"].shape[0]

    @property
    def n_features(self) -> int:
        return self.tensors["dense.weight"].shape[1]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Flux's default init: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).

    Flux computes the fans of a kernel (kw, kh, in, out) as (kw*kh*in, kw*kh*out)
    and of a Dense matrix (out, in) as (in, out); in this file's layouts that is
    the same for (out, in, kh, kw) and (out, in).
    """
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_out, fan_in = shape[0] * receptive, shape[1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def init_weights(seed: int, in_channels: int, image_size: int, n_labels: int) -> CNNWeights:
    """Seeded Glorot-uniform weights and zero biases, as ``Flux.Conv``/``Dense`` start."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(in_channels, image_size, n_labels).items():
        is_bias = name.endswith(".bias")
        tensors[name] = np.zeros(shape, np.float32) if is_bias else glorot_uniform(rng, shape)
    return CNNWeights(tensors)


def save_weights(path: str | Path, weights: CNNWeights) -> None:
    from safetensors.numpy import save_file

    description: dict[str, object] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    if weights.labels is not None:
        description["labels"] = list(weights.labels)
    metadata = {METADATA_KEY: json.dumps(description, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(weights.tensors, str(tmp), metadata=metadata)


def _labels_from_metadata(metadata: dict[str, str], source: str) -> list[str] | None:
    if METADATA_KEY not in metadata:
        return None
    try:
        description = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise StepError(f"weights file {source}: metadata is not JSON: {error}") from error
    if description.get("format") != FORMAT:
        raise StepError(
            f"weights file {source}: format {description.get('format')!r}, not {FORMAT!r}"
        )
    labels = description.get("labels")
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(label, str) for label in labels)
    ):
        raise StepError(f"weights file {source}: metadata labels must be a list of strings")
    return labels


def _not_safetensors(path: str | Path, error: Exception) -> StepError:
    with open(path, "rb") as handle:
        start = handle.read(4)
    hint = ""
    if start[:1] == b"\x80" or start == b"PK\x03\x04":
        hint = (
            " (it looks like a pickle or torch.save checkpoint, which is never loaded because "
            "unpickling can run code: save the tensors with safetensors instead)"
        )
    return StepError(f"weights file {path} is not a safetensors file{hint}: {error}")


def _read(path: str | Path, what: Callable[[Any], T]) -> tuple[dict[str, str], T]:
    """A safetensors file's metadata and ``what(handle)``; a clear error for anything else."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise StepError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            return handle.metadata() or {}, what(handle)
    except (SafetensorError, OSError, ValueError) as error:
        raise _not_safetensors(path, error) from error


def load_weights(path: str | Path) -> CNNWeights:
    """Read and check a weights file; every problem names the file."""
    metadata, tensors = _read(
        path,
        lambda handle: {name: handle.get_tensor(name) for name in handle.keys()},  # noqa: SIM118 (safe_open is no dict)
    )
    weights = CNNWeights(tensors, _labels_from_metadata(metadata, str(path)))
    check_weights(weights, str(path))
    return weights


@dataclass(frozen=True)
class WeightsHeader:
    """What a weights file's header says: tensor shapes and, maybe, labels."""

    shapes: dict[str, tuple[int, ...]]
    labels: list[str] | None

    @property
    def in_channels(self) -> int:
        return self.shapes["conv1.weight"][1]

    @property
    def n_labels(self) -> int:
        return self.shapes["dense.weight"][0]

    @property
    def n_features(self) -> int:
        return self.shapes["dense.weight"][1]


def _shapes_and_dtypes(handle: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, safetensors dtype such as "F32"), from the header alone."""
    entries = {}
    for name in handle.keys():  # noqa: SIM118 (safe_open is no dict)
        piece = handle.get_slice(name)
        entries[name] = (tuple(piece.get_shape()), piece.get_dtype())
    return entries


def read_header(path: str | Path) -> WeightsHeader:
    """Check a weights file's header (names, dtypes, shapes, labels) without reading tensors."""
    metadata, slices = _read(path, _shapes_and_dtypes)
    labels = _labels_from_metadata(metadata, str(path))
    check_names(slices, str(path))
    for name, (_, dtype) in slices.items():
        if dtype != "F32":
            raise StepError(f"weights file {path}: {name} is {dtype}, expected float32 (F32)")
    shapes = {name: shape for name, (shape, _) in slices.items()}
    check_shapes(shapes, str(path), labels)
    return WeightsHeader(shapes, labels)


def _dim(shape: tuple[int, ...], axis: int, ndim: int) -> int:
    return shape[axis] if len(shape) == ndim else -1


def check_names(names: Iterable[str], source: str) -> None:
    if set(names) != set(TENSOR_NAMES):
        raise StepError(
            f"weights file {source}: expected tensors {sorted(TENSOR_NAMES)}, found {sorted(names)}"
        )


def check_shapes(
    shapes: Mapping[str, tuple[int, ...]], source: str, labels: Sequence[str] | None
) -> None:
    """The six tensors' shapes agree with each other (and with the labels, when recorded)."""
    in_channels = _dim(shapes["conv1.weight"], 1, 4)
    n_labels = _dim(shapes["dense.weight"], 0, 2)
    n_features = _dim(shapes["dense.weight"], 1, 2)
    expected = {
        "conv1.weight": (CONV1_CHANNELS, in_channels, KERNEL, KERNEL),
        "conv1.bias": (CONV1_CHANNELS,),
        "conv2.weight": (CONV2_CHANNELS, CONV1_CHANNELS, KERNEL, KERNEL),
        "conv2.bias": (CONV2_CHANNELS,),
        "dense.weight": (n_labels, n_features),
        "dense.bias": (n_labels,),
    }
    for name, shape in expected.items():
        if tuple(shapes[name]) != shape or min(shape) < 1:
            raise StepError(
                f"weights file {source}: {name} has shape {tuple(shapes[name])}, expected {shape}"
            )
    side = math.isqrt(n_features // CONV2_CHANNELS)
    if CONV2_CHANNELS * side * side != n_features:
        raise StepError(
            f"weights file {source}: dense.weight has {n_features} inputs, "
            f"not {CONV2_CHANNELS}*k*k for a pooled image side k"
        )
    if labels is not None and len(labels) != n_labels:
        raise StepError(
            f"weights file {source}: its metadata names {len(labels)} labels "
            f"but dense.weight has {n_labels} outputs"
        )


def check_weights(weights: CNNWeights, source: str) -> None:
    """Names, dtypes, finiteness and mutually consistent shapes."""
    check_names(weights.tensors, source)
    for name, array in weights.tensors.items():
        if array.dtype != np.float32:
            raise StepError(f"weights file {source}: {name} is {array.dtype}, expected float32")
        if not np.isfinite(array).all():
            raise StepError(f"weights file {source}: {name} has NaN or infinite values")
    shapes = {name: array.shape for name, array in weights.tensors.items()}
    check_shapes(shapes, source, weights.labels)


class IncompatibleWeights(StepError):
    """Weights that do not fit the config: the message is ``<key>: <problem>``, ``key``
    the config key to change."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem

    def __reduce__(self) -> tuple[type[IncompatibleWeights], tuple[str, str]]:
        return type(self), (self.key, self.problem)


def check_compatible(
    weights: CNNWeights | WeightsHeader,
    source: str,
    labels: Sequence[str],
    tensor_shape: tuple[int, ...],
) -> None:
    """The weights fit the configured labels and the tensors' (C, S, S) shape.

    Each message starts with the config key to change (``IncompatibleWeights.key``); the
    config check runs this on the file's header before any job, the predict step on the
    loaded weights.
    """
    if weights.n_labels != len(labels):
        raise IncompatibleWeights(
            "classifier.labels",
            f"{len(labels)} labels, but weights file {source} has {weights.n_labels} outputs",
        )
    if weights.labels is not None and list(weights.labels) != list(labels):
        raise IncompatibleWeights(
            "classifier.labels",
            f"{list(labels)} do not match the labels recorded in "
            f"weights file {source}: {weights.labels}",
        )
    channels, height, width = tensor_shape
    if channels != weights.in_channels:
        raise IncompatibleWeights(
            "preprocess.grayscale",
            f"the tensors have {channels} channel(s), but weights file "
            f"{source} expects {weights.in_channels}",
        )
    if height != width or dense_inputs(height) != weights.n_features:
        raise IncompatibleWeights(
            "preprocess.size",
            f"{height} gives {dense_inputs(height)} dense inputs, but weights "
            f"file {source} has {weights.n_features}",
        )
