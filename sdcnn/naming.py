"""File names of the images of one prompt, shared by every step."""

from __future__ import annotations


def image_id(prompt_id: str, index: int) -> str:
    """``city`` and 0 give ``city_000``; the stem of the PNG, ``.npy`` and preview."""
    return f"{prompt_id}_{index:03d}"


def image_ids(prompt_id: str, n_images: int) -> list[str]:
    return [image_id(prompt_id, index) for index in range(n_images)]
