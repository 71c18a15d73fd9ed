"""An independent reference of the classifier's semantics, Flux.jl's, written as direct loops.

It shares no code with ``sdcnn.classify.cnn`` (torch) or ``julia/src/SDCNN.jl`` (Flux): every
layer is spelled out index by index in float64, from the definitions in
docs/equivalence.md, so that both backends can be checked against it.

    Conv((3,3), C=>16, relu; pad=1) -> MaxPool((2,2)) ->
    Conv((3,3), 16=>32, relu; pad=1) -> MaxPool((2,2)) ->
    flatten -> Dense -> softmax

Flux's ``Conv`` is a true convolution (the kernel is flipped); with the kernel
``K[out, in, kh, kw]`` of the weights file, pad 1 and a 3x3 kernel:

    y[o, i, j] = b[o] + sum over c, u, v of K[o, c, u, v] * x[c, i + 1 - u, j + 1 - v]

(``x`` is zero outside the image).  ``variant`` swaps in the mistakes a port
could make, so that tests can show the golden vectors tell them apart:

- ``"flux"``: the semantics above;
- ``"cross_correlation"``: ``x[c, i - 1 + u, j - 1 + v]`` (PyTorch's ``conv2d``
  without the kernel flip, or Flux's ``CrossCor``);
- ``"transposed_kernel"``: the kernel's (kh, kw) axes swapped;
- ``"hwc_flatten"``: the dense layer reads the pooled map in (h, w, c) order
  instead of (c, h, w).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

VARIANTS = ("flux", "cross_correlation", "transposed_kernel", "hwc_flatten")


def conv3x3_same(
    image: np.ndarray, kernel: np.ndarray, bias: np.ndarray, variant: str = "flux"
) -> np.ndarray:
    """(C, H, W) image, (O, C, 3, 3) kernel, (O,) bias -> (O, H, W), pad 1, stride 1."""
    channels, height, width = image.shape
    outputs = kernel.shape[0]
    result = np.zeros((outputs, height, width))
    for o in range(outputs):
        for i in range(height):
            for j in range(width):
                total = float(bias[o])
                for c in range(channels):
                    for u in range(3):
                        for v in range(3):
                            transposed = variant == "transposed_kernel"
                            tap = kernel[o, c, v, u] if transposed else kernel[o, c, u, v]
                            if variant == "cross_correlation":
                                row, col = i - 1 + u, j - 1 + v
                            else:
                                row, col = i + 1 - u, j + 1 - v
                            if 0 <= row < height and 0 <= col < width:
                                total += float(tap) * float(image[c, row, col])
                result[o, i, j] = total
    return result


def relu(values: np.ndarray) -> np.ndarray:
    result = values.copy()
    for index in np.ndindex(result.shape):
        if result[index] < 0:
            result[index] = 0.0
    return result


def maxpool2(values: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (C, H // 2, W // 2): 2x2 windows, stride 2; odd last row/column dropped."""
    channels, height, width = values.shape
    result = np.zeros((channels, height // 2, width // 2))
    for c in range(channels):
        for i in range(height // 2):
            for j in range(width // 2):
                result[c, i, j] = max(
                    values[c, 2 * i, 2 * j],
                    values[c, 2 * i, 2 * j + 1],
                    values[c, 2 * i + 1, 2 * j],
                    values[c, 2 * i + 1, 2 * j + 1],
                )
    return result


def flatten(values: np.ndarray, variant: str = "flux") -> list[float]:
    """Feature ``c * H * W + h * W + w`` (Flux's flatten of WHCN; torch's of NCHW)."""
    channels, height, width = values.shape
    if variant == "hwc_flatten":
        order = [(c, h, w) for h in range(height) for w in range(width) for c in range(channels)]
    else:
        order = [(c, h, w) for c in range(channels) for h in range(height) for w in range(width)]
    return [float(values[index]) for index in order]


def dense(weight: np.ndarray, bias: np.ndarray, features: Sequence[float]) -> list[float]:
    """``y = W x + b`` with W of shape (out, in)."""
    outputs, inputs = weight.shape
    if inputs != len(features):
        raise ValueError(f"dense layer takes {inputs} features, got {len(features)}")
    return [
        float(bias[o]) + sum(float(weight[o, f]) * features[f] for f in range(inputs))
        for o in range(outputs)
    ]


def softmax(logits: Sequence[float]) -> list[float]:
    largest = max(logits)
    exps = [math.exp(value - largest) for value in logits]
    total = sum(exps)
    return [value / total for value in exps]


def logits(
    tensors: Mapping[str, np.ndarray], image: np.ndarray, variant: str = "flux"
) -> list[float]:
    """The classifier's logits for one (C, S, S) image, from the weights file's tensors."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    hidden = conv3x3_same(image, tensors["conv1.weight"], tensors["conv1.bias"], variant)
    hidden = maxpool2(relu(hidden))
    hidden = conv3x3_same(hidden, tensors["conv2.weight"], tensors["conv2.bias"], variant)
    hidden = maxpool2(relu(hidden))
    return dense(tensors["dense.weight"], tensors["dense.bias"], flatten(hidden, variant))


def probabilities(
    tensors: Mapping[str, np.ndarray], images: Sequence[np.ndarray], variant: str = "flux"
) -> np.ndarray:
    """Softmax probabilities, float64 (N, n_labels), for a list of (C, S, S) images."""
    return np.array([softmax(logits(tensors, image, variant)) for image in images])
