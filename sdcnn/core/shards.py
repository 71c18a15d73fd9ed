"""Shards: which shard a prompt is in (a hash of its id), and where a step finds and puts
one prompt's files inside its shard's outputs.

``assign_shards(prompt_ids, 16)`` gives each shard's name (``03-of-16``) and prompts: a
prompt's shard is a hash of its id alone, so adding or removing a prompt moves no other.
A job of generate, preprocess, predict or figures works on a shard: with ``shards`` in
the config, ``results/<kind>/<shard>/`` holds one folder (images, tensors, previews,
charts) or one file (``<prompt>.json``, ``<prompt>.png``) per prompt; without it, each
prompt is its own shard and ``results/<kind>/<prompt>/`` (or ``<prompt>.json``) is the
prompt's own output, as Snakemake names it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sdcnn.core.fileio import atomic_directory, atomic_path
from sdcnn.core.naming import image_ids


@dataclass(frozen=True)
class ShardLayout:
    sharded: bool

    def folder(self, shard_output: str | Path, prompt_id: str) -> Path:
        """A prompt's folder of images (tensors, previews, charts) in a shard's output."""
        return Path(shard_output) / prompt_id if self.sharded else Path(shard_output)

    def file(self, shard_output: str | Path, prompt_id: str, suffix: str) -> Path:
        """A prompt's single file (``.json``, ``.png``) in a shard's output."""
        return Path(shard_output) / f"{prompt_id}{suffix}" if self.sharded else Path(shard_output)

    @contextlib.contextmanager
    def files(self, shard_output: str | Path, suffix: str) -> Iterator[Callable[[str], Path]]:
        """Write a shard's one-file-per-prompt output atomically: yields ``path_of(prompt_id)``,
        where to write each prompt's file; the output gets its final name only when the
        block ends without an error (a folder of files with shards, else the one file)."""
        if self.sharded:
            with atomic_directory(shard_output) as folder:
                yield lambda prompt_id: folder / f"{prompt_id}{suffix}"
        else:
            with atomic_path(shard_output) as path:
                yield lambda prompt_id: path


@dataclass(frozen=True)
class PromptBatch:
    """One prompt's tensors, in image order: what one prediction document covers."""

    prompt_id: str
    image_ids: list[str]
    tensor_paths: list[str]
    # each image's safety-checker verdict (sdcnn.generate.safety_checker): None where unknown
    safety_flagged: list[bool | None] | None = None
    label: str | None = None  # the label the prompt's images are meant to show
    splits: list[str] | None = None  # each image's "train" or "holdout" (labelled prompts)


def shard_batches(
    tensor_dir: str | Path, images: Mapping[str, int], layout: ShardLayout
) -> list[PromptBatch]:
    """The batch of each prompt of a shard (``images``: prompt id -> number of images)."""
    batches = []
    for prompt_id, n_images in images.items():
        folder = layout.folder(tensor_dir, prompt_id)
        stems = image_ids(prompt_id, n_images)
        batches.append(PromptBatch(prompt_id, stems, [f"{folder}/{stem}.npy" for stem in stems]))
    return batches


def quota(total: int | None, index: int, n_shards: int) -> int | None:
    """Shard ``index``'s share of ``total`` pictures over ``n_shards`` shards (the first
    ``total % n_shards`` shards one more); None (no limit) stays None."""
    if total is None:
        return None
    if total < 0 or n_shards < 1 or not 0 <= index < n_shards:
        raise ValueError(f"no quota for shard {index} of {n_shards} from {total}")
    return total // n_shards + (1 if index < total % n_shards else 0)


def shard_index(prompt_id: str, n_shards: int) -> int:
    """The shard of a prompt: a hash of its id alone (0-based), the same in every run."""
    digest = hashlib.sha256(prompt_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def shard_name(index: int, n_shards: int) -> str:
    """``02-of-16``: 1-based, zero-padded so that the shard folders sort in order."""
    width = len(str(n_shards))
    return f"{index + 1:0{width}d}-of-{n_shards:0{width}d}"


def assign_shards(prompt_ids: Iterable[str], n_shards: int | None) -> dict[str, list[str]]:
    """Shard name -> its prompt ids (in the given order); only non-empty shards.

    Without ``n_shards`` every prompt is a shard of its own, named after the prompt.
    """
    if n_shards is None:
        return {prompt_id: [prompt_id] for prompt_id in prompt_ids}
    shards: dict[int, list[str]] = {}
    for prompt_id in prompt_ids:
        shards.setdefault(shard_index(prompt_id, n_shards), []).append(prompt_id)
    return {shard_name(index, n_shards): shards[index] for index in sorted(shards)}
