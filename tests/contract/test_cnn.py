"""The torch CNN on inputs whose outputs can be computed by hand.

An impulse image and one-tap kernels make every layer's output predictable:
a true convolution (Flux's ``Conv``) moves the impulse one way, a
cross-correlation the other way, and a transposed kernel elsewhere again, so
each mistake lands the activation on a different output label.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdcnn.classify.cnn import FluxCNN
from sdcnn.classify.weights import CNNWeights, expected_shapes


def impulse_weights(conv1_tap: tuple[int, int], dense_bias: list[float]) -> CNNWeights:
    """8x8 grayscale -> 4 labels; conv1 channel 0 has one tap of 1 at (kh, kw) = conv1_tap;
    conv2 channel 0 copies channel 0 (centre tap); dense label k reads pooled cell k of channel 0.
    """
    shapes = expected_shapes(in_channels=1, image_size=8, n_labels=4)
    tensors = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    tensors["conv1.weight"][0, 0, conv1_tap[0], conv1_tap[1]] = 1.0
    tensors["conv2.weight"][0, 0, 1, 1] = 1.0
    for label in range(4):  # channel 0, pooled 2x2 map, row-major (h, w): feature index = h*2 + w
        tensors["dense.weight"][label, label] = 1.0
    tensors["dense.bias"][:] = dense_bias
    return CNNWeights(tensors)


def softmax(logits: list[float]) -> list[float]:
    exps = [math.exp(value) for value in logits]
    return [value / sum(exps) for value in exps]


def impulse_image(h: int, w: int, value: float = 0.5) -> torch.Tensor:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, h, w] = value
    return image


def test_true_convolution_moves_the_impulse_the_flux_way() -> None:
    # True convolution with pad 1: y[i, j] = sum K[u, v] x[i + 1 - u, j + 1 - v].
    # Tap (kh=0, kw=2): y[i, j] = x[i + 1, j - 1], so the impulse at (3, 3) lands at (2, 4);
    # max-pool 2 -> (1, 2); conv2 copies; max-pool 2 -> (0, 1) -> feature 1 -> label 1.
    # (A cross-correlation would land on label 2, a transposed kernel on label 2 too.)
    model = FluxCNN(impulse_weights((0, 2), dense_bias=[0.1, 0.0, -0.2, 0.3]))
    probabilities = model(impulse_image(3, 3)).numpy()[0]
    np.testing.assert_allclose(probabilities, softmax([0.1, 0.5, -0.2, 0.3]), rtol=0, atol=1e-7)


def test_flip_matters_for_another_tap() -> None:
    # Tap (kh=2, kw=2): y[i, j] = x[i - 1, j - 1]: impulse (3, 3) -> (4, 4) -> (2, 2) -> (1, 1)
    # -> feature 3.  Cross-correlation would give (2, 2) -> (1, 1) -> (0, 0) -> label 0.
    model = FluxCNN(impulse_weights((2, 2), dense_bias=[0.0, 0.0, 0.0, 0.0]))
    probabilities = model(impulse_image(3, 3, value=1.0)).numpy()[0]
    np.testing.assert_allclose(probabilities, softmax([0, 0, 0, 1.0]), rtol=0, atol=1e-7)


def test_relu_zeroes_negative_activations() -> None:
    weights = impulse_weights((1, 1), dense_bias=[0.0, 0.0, 0.0, 0.0])
    weights.tensors["conv1.weight"][0, 0, 1, 1] = -1.0  # negative response -> relu -> 0
    probabilities = FluxCNN(weights)(impulse_image(3, 3, value=1.0)).numpy()[0]
    np.testing.assert_allclose(probabilities, [0.25] * 4, rtol=0, atol=1e-7)


def test_biases_pass_through_relu_and_pooling() -> None:
    weights = impulse_weights((1, 1), dense_bias=[0.0, 0.0, 0.0, 0.0])
    weights.tensors["dense.weight"][0, 0] = 2.0  # label 0 reads its feature twice
    weights.tensors["conv1.bias"][0] = 0.25  # every activation of channel 0 becomes 0.25
    probabilities = FluxCNN(weights)(torch.zeros(1, 1, 8, 8)).numpy()[0]
    np.testing.assert_allclose(probabilities, softmax([0.5, 0.25, 0.25, 0.25]), rtol=0, atol=1e-7)
    weights.tensors["conv2.bias"][0] = 0.5  # channel 0 after conv2: 0.25 + 0.5
    probabilities = FluxCNN(weights)(torch.zeros(1, 1, 8, 8)).numpy()[0]
    np.testing.assert_allclose(probabilities, softmax([1.5, 0.75, 0.75, 0.75]), rtol=0, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_rows_are_independent(batch: int) -> None:
    model = FluxCNN(impulse_weights((0, 2), dense_bias=[0.1, 0.0, -0.2, 0.3]))
    images = torch.cat([impulse_image(3, 3)] * batch)
    probabilities = model(images).numpy()
    assert probabilities.shape == (batch, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probabilities, np.repeat(probabilities[:1], batch, axis=0))
