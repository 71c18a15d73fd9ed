"""File names of the images of one prompt, shared by every step."""

from __future__ import annotations

from pathlib import Path


def image_id(prompt_id: str, index: int) -> str:
    """``city`` and 0 give ``city_000``; the stem of the PNG, ``.npy`` and preview."""
    return f"{prompt_id}_{index:03d}"


def image_ids(prompt_id: str, n_images: int) -> list[str]:
    return [image_id(prompt_id, index) for index in range(n_images)]


def tensor_path(folder: str | Path, image_id: str) -> Path:
    """An image's ``.npy`` tensor in a folder of them (a prompt's, or a real shard's)."""
    return Path(folder) / f"{image_id}.npy"


TRAIN, HOLDOUT = "train", "holdout"


def split_of(index: int, holdout_every: int) -> str:
    """``holdout`` for every ``holdout_every``-th image of a labelled prompt (indices
    ``holdout_every - 1``, ``2 * holdout_every - 1``, ...), else ``train``: adding images
    to a prompt never moves an image from one split to the other."""
    return HOLDOUT if index % holdout_every == holdout_every - 1 else TRAIN
