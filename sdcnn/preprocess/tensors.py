"""Reading the preprocessed tensors, checked, as both the predict and the training step do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sdcnn.core.errors import StepError


def load_tensor(path: str | Path) -> np.ndarray:
    """One preprocessed tensor, checked: float32 (C, S, S), finite, in [0, 1]."""
    try:
        tensor = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise StepError(f"{path}: not a readable .npy file: {error}") from error
    if tensor.dtype != np.float32:
        raise StepError(f"{path}: dtype {tensor.dtype}, expected float32")
    if tensor.ndim != 3 or tensor.shape[1] != tensor.shape[2]:
        raise StepError(f"{path}: shape {tensor.shape}, expected (channels, size, size)")
    if not np.isfinite(tensor).all():
        raise StepError(f"{path}: contains NaN or infinite values")
    if tensor.size and (tensor.min() < 0 or tensor.max() > 1):
        raise StepError(f"{path}: values outside [0, 1] ({tensor.min()}..{tensor.max()})")
    return tensor


def load_batch(paths: Sequence[str | Path]) -> np.ndarray:
    """Stack a prompt's tensors into one float32 NCHW batch; all must share a shape."""
    tensors = [load_tensor(path) for path in paths]
    shapes = {tensor.shape for tensor in tensors}
    if len(shapes) != 1:
        raise StepError(f"tensors of one batch differ in shape: {sorted(shapes)}")
    return np.stack(tensors)
