"""Values derived from a checked config (sdcnn/config/values.py)."""

from __future__ import annotations

from sdcnn.config.values import weights_mode


def test_a_weights_file_is_the_users() -> None:
    assert weights_mode("my/weights.safetensors") == "file"
    assert weights_mode("trained") == "trained"
