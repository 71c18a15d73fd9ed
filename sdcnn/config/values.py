"""What config values mean where more than one part of the workflow reads them: the one
definition of ``classifier.weights``' modes and of a tensor's channel count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WEIGHTS_GLOROT, WEIGHTS_TRAINED, WEIGHTS_FILE = "glorot", "trained", "file"


def weights_mode(weights: str | None) -> str:
    """``classifier.weights``: glorot (also null), trained, or a file of the user's."""
    if weights in (None, WEIGHTS_GLOROT):
        return WEIGHTS_GLOROT
    return WEIGHTS_TRAINED if weights == WEIGHTS_TRAINED else WEIGHTS_FILE


def image_channels(preprocess: Mapping[str, Any]) -> int:
    """Channels of a preprocessed tensor, and so of the CNN's first convolution."""
    return 1 if preprocess["grayscale"] else 3
