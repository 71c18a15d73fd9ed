"""The CNN in PyTorch, computing what the Flux.jl model computes: the one network that
the predict step runs (float32) and the train_classifier step trains (sdcnn.classify.training,
float64).

    Conv((3,3), C=>16, relu; pad=1) -> MaxPool((2,2)) ->
    Conv((3,3), 16=>32, relu; pad=1) -> MaxPool((2,2)) ->
    flatten -> Dense(32*(S/4)^2 => n_labels) -> softmax

Flux's ``Conv`` is a true convolution: it flips the kernel.  ``torch.conv2d``
is a cross-correlation, so the network holds the weights file's kernels flipped in
both spatial axes, and flips them back when it writes weights.  Input batches are
NCHW; the flatten order of NCHW in PyTorch equals that of WHCN in Flux
(docs/equivalence.md).

``relu`` runs after the pooling instead of before: relu is monotone, so max-then-relu
equals relu-then-max bit for bit, on a quarter of the values, and so do their gradients
(the pooling picks the same element; relu passes or stops its gradient alike).
For prediction the feature maps are also kept channels-last, where max-pooling on a CPU
is much faster than on NCHW (benchmarks/predict_speed.py, RESULTS.md §2); training keeps
NCHW, the layout its weights' reproducibility across CPUs was measured in
(docs/reproducibility.md).
The dense layer sees the NCHW (= Flux WHCN) feature order either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sdcnn.classify.weights import CNNWeights

# the weights file's tensors that are convolution kernels, held here flipped (correlation)
CONVOLUTION_KERNELS = ("conv1.weight", "conv2.weight")


def correlation_kernel(convolution_kernel: np.ndarray) -> torch.Tensor:
    """(out, in, kh, kw) convolution kernel -> the cross-correlation kernel torch needs."""
    return torch.from_numpy(np.ascontiguousarray(convolution_kernel[:, :, ::-1, ::-1]))


def parameter_name(tensor_name: str) -> str:
    """A weights file tensor's name as a torch parameter's ("conv1.weight" -> "conv1_weight")."""
    return tensor_name.replace(".", "_")


def network_tensor(name: str, array: np.ndarray, dtype: str) -> torch.Tensor:
    """The weights file's tensor ``name`` as the network holds it, in ``dtype``."""
    array = array.astype(dtype, copy=True)
    return correlation_kernel(array) if name in CONVOLUTION_KERNELS else torch.from_numpy(array)


class FluxCNN(torch.nn.Module):
    """The classifier, its parameters the weights file's tensors held in ``dtype``.

    ``forward`` takes NCHW images (converted to ``dtype``) and returns softmax
    probabilities, ``logits`` the layer before.  The parameters take gradients only when
    ``trainable``; ``channels_last`` keeps the feature maps channels-last (fast on a CPU,
    for prediction) rather than NCHW (training's layout)."""

    def __init__(
        self,
        weights: CNNWeights,
        *,
        dtype: str = "float32",
        trainable: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.tensor_names = list(weights.tensors)
        self.dtype = getattr(torch, dtype)
        self.channels_last = channels_last
        self.tensors = torch.nn.ParameterDict(
            {
                parameter_name(name): torch.nn.Parameter(
                    network_tensor(name, array, dtype), requires_grad=trainable
                )
                for name, array in weights.tensors.items()
            }
        )

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        t = self.tensors
        conv1 = F.conv2d(images.to(self.dtype), t["conv1_weight"], t["conv1_bias"], padding=1)
        if self.channels_last:
            conv1 = conv1.contiguous(memory_format=torch.channels_last)
        hidden = F.relu(F.max_pool2d(conv1, 2))
        conv2 = F.conv2d(hidden, t["conv2_weight"], t["conv2_bias"], padding=1)
        hidden = F.relu(F.max_pool2d(conv2, 2))
        return F.linear(hidden.contiguous().flatten(1), t["dense_weight"], t["dense_bias"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(images), dim=1)

    def weights(self, labels: Sequence[str]) -> CNNWeights:
        """The parameters as the weights file holds them: float32, convolution kernels."""
        tensors = {}
        for name in self.tensor_names:
            array = self.tensors[parameter_name(name)].detach().cpu().numpy()
            if name in CONVOLUTION_KERNELS:
                array = array[:, :, ::-1, ::-1]
            tensors[name] = np.ascontiguousarray(array.astype(np.float32))
        return CNNWeights(tensors, list(labels))
