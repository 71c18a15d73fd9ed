"""Per-image seeds: a pure function of (base seed, prompt id, image index).

A seed never depends on the order of the prompts, on how many images a prompt
asks for, or on which other prompts exist, so adding or removing a prompt, or
asking for one more image, leaves every existing image's seed unchanged.
"""

from __future__ import annotations

import hashlib

SEED_BITS = 32


def image_seed(base_seed: int, prompt_id: str, index: int) -> int:
    """The seed of image ``index`` (0-based) of prompt ``prompt_id``; in [0, 2**32)."""
    if index < 0:
        raise ValueError(f"image index must be >= 0, got {index}")
    key = f"{base_seed}\x1f{prompt_id}\x1f{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[: SEED_BITS // 8], "big")


def image_seeds(base_seed: int, prompt_id: str, n_images: int) -> list[int]:
    return [image_seed(base_seed, prompt_id, index) for index in range(n_images)]
