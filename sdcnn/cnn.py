"""The CNN in PyTorch, computing what the Flux.jl model computes.

    Conv((3,3), C=>16, relu; pad=1) -> MaxPool((2,2)) ->
    Conv((3,3), 16=>32, relu; pad=1) -> MaxPool((2,2)) ->
    flatten -> Dense(32*(S/4)^2 => n_labels) -> softmax

Flux's ``Conv`` is a true convolution: it flips the kernel.  ``torch.conv2d``
is a cross-correlation, so the kernels from the weights file are flipped in
both spatial axes here.  Input batches are NCHW; the flatten order of NCHW in
PyTorch equals that of WHCN in Flux (docs/equivalence.md).

Two exact rewrites make it fast on a CPU (benchmarks/predict_speed.py): the
feature maps are kept channels-last, where max-pooling is ~10x faster than on
NCHW, and ``relu`` runs after the pooling instead of before (relu is monotone,
so max-then-relu equals relu-then-max bit for bit, on a quarter of the values).
The dense layer still sees the NCHW (= Flux WHCN) feature order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sdcnn.weights import CNNWeights


def correlation_kernel(convolution_kernel: np.ndarray) -> torch.Tensor:
    """(out, in, kh, kw) convolution kernel -> the cross-correlation kernel torch needs."""
    return torch.from_numpy(np.ascontiguousarray(convolution_kernel[:, :, ::-1, ::-1]))


class FluxCNN(torch.nn.Module):
    """The classifier; ``forward`` takes float32 NCHW and returns softmax probabilities."""

    def __init__(self, weights: CNNWeights) -> None:
        super().__init__()
        tensors = weights.tensors
        self.register_buffer("conv1_weight", correlation_kernel(tensors["conv1.weight"]))
        self.register_buffer("conv1_bias", torch.from_numpy(tensors["conv1.bias"].copy()))
        self.register_buffer("conv2_weight", correlation_kernel(tensors["conv2.weight"]))
        self.register_buffer("conv2_bias", torch.from_numpy(tensors["conv2.bias"].copy()))
        self.register_buffer("dense_weight", torch.from_numpy(tensors["dense.weight"].copy()))
        self.register_buffer("dense_bias", torch.from_numpy(tensors["dense.bias"].copy()))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        conv1 = F.conv2d(images, self.conv1_weight, self.conv1_bias, padding=1)
        hidden = F.relu(F.max_pool2d(conv1.contiguous(memory_format=torch.channels_last), 2))
        conv2 = F.conv2d(hidden, self.conv2_weight, self.conv2_bias, padding=1)
        hidden = F.relu(F.max_pool2d(conv2, 2))
        return F.linear(hidden.contiguous().flatten(1), self.dense_weight, self.dense_bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(images), dim=1)
