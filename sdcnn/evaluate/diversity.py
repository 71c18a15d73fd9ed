"""How different a prompt's images are from each other: a cheap measure, per prompt.

Two measures, both on the preprocessed tensors (float32 ``(C, S, S)`` in [0, 1], as
``sdcnn.preprocess.tensors`` loads them: what the CNN sees, and no PNG decoded again):

**Mean distance.** ``mean_distance`` is the root of the mean, over all distinct pairs of the
prompt's images, of their mean squared difference per tensor value::

    mean_distance = sqrt( mean_{i<j} |x_i - x_j|^2 / D )      (D values per tensor)

that is the quadratic mean of the pairs' RMS differences, in [0, 1]; 0 for identical images.
It is exact and costs O(n D), not O(n^2 D), by the identity
``sum_{i<j} |x_i - x_j|^2 = n sum_i |x_i - mean|^2``: the mean over the n (n - 1) / 2 pairs
is ``2 / (n - 1) * sum_i |x_i - mean|^2`` (over all n^2 ordered pairs, i = j included, it
would be 2 * mean_i |x_i - mean|^2).  The sum is accumulated in float64 in chunks, merged
with Chan et al.'s update, so memory stays O(D) at any n.  Distinct pictures of one demo
prompt are 0.2-0.3 apart; a re-encoded (JPEG quality 75) copy 0.02, 1 % noise 0.014.

**Near duplicates.** Each image gets a 64-bit perceptual hash, and every pair whose hashes
differ in at most ``max_hamming`` bits (default 4) is a near-duplicate pair.  ``phash``
(the default) is the ``imagehash`` package's ``phash``: the image in grayscale (ITU-R
BT.601 luma, as PIL's "L") resized to 32 x 32, its 2-D DCT-II, the 8 x 8 lowest frequencies
(DC included), one bit each: above their median.  ``dhash`` is ``imagehash.dhash``: grayscale
at 9 x 8, one bit each: brighter than its left neighbour.  Bits are row-major, the first the
most significant, so ``f"{hash:016x}"`` reads as ``str(imagehash_hash)``.  Both work on the
float tensor and resize with OpenCV's INTER_AREA (imagehash: the 8-bit image, PIL's LANCZOS),
so a hash may differ from imagehash's in a few bits; the distances mean the same.  pHash
stands noise and re-encoding (flat regions make ``dhash`` bits coin flips under noise);
``dhash`` stands small shifts better, and pHash is weak on pictures symmetric about their
centre (their odd coefficients sit at the median).  Both are grayscale: colour alone does not
tell two images apart (within one prompt the colour is usually the same).  All pairs are
compared, n (n - 1) / 2 XOR/popcounts in blocks of bounded memory: 50 million at 10,000 images
(benchmarks/diversity_cost.py).

**Flag.** A prompt is flagged as of low diversity when its images have near duplicates
(more than ``max_duplicate_share`` of them are in a near-duplicate pair; default 0: any) or
its mean distance is below ``min_mean_distance`` (default 0.05, about 13 of 255 grey levels
RMS: copies, not different pictures).  A prompt of fewer than 2 images is never flagged.
In a prompt of many small simple pictures near-duplicate pairs happen by chance (two shapes
of one kind a pixel apart): of the demo's "a red circle" pictures (seeds drawn in turn), 0 of
24, 8 of 50, 19 of 100 and 208 of 400 are in a pair at 4 bits; ``max_duplicate_share`` is the
knob for such prompts (the demo's default config draws 12 images a prompt).

Use, per prompt (a shard writes ``diversity_document`` of its prompts;
``sdcnn.evaluate.diversity_results.merge_documents`` joins shards)::

    result = prompt_diversity("p1", image_ids, tensors)          # tensors: (N, C, S, S)
    result = files_diversity("p1", tensor_paths)                  # or .npy files, streamed
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sdcnn.core.errors import StepError
from sdcnn.core.shards import ShardLayout, shard_batches
from sdcnn.evaluate.diversity_results import SCHEMA
from sdcnn.preprocess.tensors import load_tensor

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's "L" and OpenCV
HASH_BITS = 8  # a hash is HASH_BITS x HASH_BITS = 64 bits
PHASH_SIZE = 32  # pHash's DCT input side (imagehash: hash_size * highfreq_factor)
CHUNK = 256  # tensors per accumulation step
BLOCK = 1 << 22  # hash pairs compared at once (32 MiB of uint64)


@dataclass(frozen=True)
class DiversitySettings:
    """What counts as low diversity (see the module's docstring); ``max_listed``: how many
    near-duplicate pairs a result lists (the closest first; all are counted)."""

    hash: str = "phash"
    max_hamming: int = 4
    min_mean_distance: float = 0.05
    max_duplicate_share: float = 0.0
    max_listed: int = 100

    def __post_init__(self) -> None:
        if self.hash not in HASHES:
            raise StepError(f"diversity hash must be one of {sorted(HASHES)}, not {self.hash!r}")
        if not 0 <= self.max_hamming < HASH_BITS * HASH_BITS:
            raise StepError(f"max_hamming must be in 0..63, not {self.max_hamming}")
        if not 0 <= self.max_duplicate_share < 1 or not 0 <= self.min_mean_distance <= 1:
            raise StepError("max_duplicate_share must be in [0, 1), min_mean_distance in [0, 1]")
        if self.max_listed < 0:
            raise StepError(f"max_listed must not be negative, not {self.max_listed}")


# ---- hashes


def grayscale(batch: np.ndarray) -> np.ndarray:
    """(N, C, S, S) tensors, C 1 or 3 (RGB) -> (N, S, S) float32 luma."""
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise StepError(f"expected (N, 1 or 3, S, S) tensors, got shape {batch.shape}")
    if batch.shape[1] == 1:
        return batch[:, 0].astype(np.float32, copy=False)
    return np.tensordot(batch.astype(np.float32, copy=False), LUMA, axes=([1], [0]))


def resized(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each (S, S) image of ``gray`` at ``width`` x ``height`` (INTER_AREA), float64."""
    out = np.empty((len(gray), height, width), np.float64)
    for index, image in enumerate(gray):
        out[index] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return out


@cache
def dct_rows(size: int, rows: int) -> np.ndarray:
    """The first ``rows`` DCT-II basis rows of length ``size``, unscaled (scipy's ``dct``
    without its factor 2: the same signs and order, which is all a median test needs)."""
    k = np.arange(rows)[:, None]
    n = np.arange(size)[None, :]
    return np.cos(np.pi * k * (2 * n + 1) / (2 * size))


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 64) booleans, row-major, the first the most significant -> (N,) uint64."""
    packed = np.packbits(bits.reshape(len(bits), -1).astype(np.uint8), axis=1)
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def phash(batch: np.ndarray) -> np.ndarray:
    """64-bit pHash of each tensor of an (N, C, S, S) batch (see the module's docstring)."""
    pixels = resized(grayscale(batch), PHASH_SIZE, PHASH_SIZE)
    basis = dct_rows(PHASH_SIZE, HASH_BITS)
    low = basis @ pixels @ basis.T  # (N, 8, 8): the lowest frequencies, DC at [0, 0]
    median = np.median(low.reshape(len(low), -1), axis=1)
    return pack_bits(low > median[:, None, None])


def dhash(batch: np.ndarray) -> np.ndarray:
    """64-bit dHash of each tensor of an (N, C, S, S) batch (see the module's docstring)."""
    pixels = resized(grayscale(batch), HASH_BITS + 1, HASH_BITS)
    return pack_bits(pixels[:, :, 1:] > pixels[:, :, :-1])


HASHES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"phash": phash, "dhash": dhash}


def hamming(first: np.ndarray | int, second: np.ndarray | int) -> np.ndarray:
    """Bits in which 64-bit hashes differ (element-wise)."""
    return np.bitwise_count(
        np.bitwise_xor(np.asarray(first, np.uint64), np.asarray(second, np.uint64))
    )


def hash_hex(value: int | np.integer) -> str:
    """A hash as 16 hex digits, as ``str()`` of an imagehash hash."""
    return f"{int(value):016x}"


# ---- near-duplicate pairs


@dataclass(frozen=True)
class NearDuplicates:
    """Near-duplicate pairs ``(i, j, bits)``, i < j, the closest first (then by i, j): at
    most the ``max_listed`` closest; ``count`` of all; ``with_duplicate``: how many images
    are in at least one pair."""

    pairs: list[tuple[int, int, int]]
    count: int
    with_duplicate: int


def near_duplicates(hashes: np.ndarray, max_hamming: int, max_listed: int) -> NearDuplicates:
    """Every pair of ``hashes`` within ``max_hamming`` bits, compared in blocks of rows."""
    hashes = np.asarray(hashes, np.uint64)
    n = len(hashes)
    listed: list[list[tuple[int, int, int]]] = [[] for _ in range(max_hamming + 1)]
    count = 0
    in_pair = np.zeros(n, bool)
    start = 0
    while start < n - 1:
        rows = max(1, BLOCK // (n - start))
        stop = min(n - 1, start + rows)
        bits = hamming(hashes[start:stop, None], hashes[None, start:])  # (rows, n - start)
        first, second = np.nonzero(bits <= max_hamming)
        keep = second > first  # column index counts from ``start``, as the rows do
        first, second = first[keep] + start, second[keep] + start
        distance = bits[first - start, second - start]
        count += len(first)
        in_pair[first] = True
        in_pair[second] = True
        for value, found in enumerate(listed):
            room = max_listed - len(found)
            if room > 0:
                chosen = np.flatnonzero(distance == value)[:room]
                found += [(int(first[k]), int(second[k]), value) for k in chosen]
        start = stop
    pairs = [pair for found in listed for pair in found][:max_listed]
    return NearDuplicates(pairs, count, int(np.count_nonzero(in_pair)))


# ---- the mean distance


class Spread:
    """Streaming ``sum_i |x_i - mean|^2`` of flattened tensors (float64, Chan et al.'s
    merge of chunks): ``add`` batches, then read ``mean_squared_distance``."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2 = 0.0

    def add(self, batch: np.ndarray) -> None:
        for start in range(0, len(batch), CHUNK):
            self._add_chunk(batch[start : start + CHUNK].reshape(-1, batch[0].size))

    def _add_chunk(self, chunk: np.ndarray) -> None:
        values = chunk.astype(np.float64)
        n_chunk = len(values)
        chunk_mean = values.mean(axis=0)
        values -= chunk_mean
        chunk_m2 = float(np.einsum("ij,ij->", values, values))
        if self.mean is None:
            self.count, self.mean, self.m2 = n_chunk, chunk_mean, chunk_m2
            return
        if chunk_mean.shape != self.mean.shape:
            raise StepError(f"tensors of one prompt differ in size: {chunk[0].size} values")
        total = self.count + n_chunk
        delta = chunk_mean - self.mean
        self.m2 += chunk_m2 + float(delta @ delta) * self.count * n_chunk / total
        self.mean = self.mean + delta * (n_chunk / total)
        self.count = total

    def mean_squared_distance(self) -> float | None:
        """Mean over distinct pairs of the mean squared difference per value; None below 2."""
        if self.count < 2 or self.mean is None:
            return None
        return 2.0 * self.m2 / ((self.count - 1) * self.mean.size)


# ---- per prompt


class PromptDiversity:
    """One prompt's diversity, fed batch by batch (``add``), read with ``result``."""

    def __init__(self, prompt_id: str, settings: DiversitySettings | None = None) -> None:
        self.prompt_id = prompt_id
        self.settings = settings or DiversitySettings()
        self.image_ids: list[str] = []
        self.hashes: list[np.ndarray] = []
        self.spread = Spread()

    def add(self, image_ids: Sequence[str], batch: np.ndarray) -> None:
        """Images ``image_ids`` as an (N, C, S, S) batch of tensors."""
        batch = np.asarray(batch)
        if len(image_ids) != len(batch):
            raise StepError(f"{self.prompt_id}: {len(image_ids)} image ids, {len(batch)} tensors")
        if not len(batch):
            return
        self.hashes.append(HASHES[self.settings.hash](batch))
        self.spread.add(batch)
        self.image_ids += list(image_ids)

    def result(self) -> dict[str, Any]:
        """``{"prompt_id", "n_images", "mean_distance", "near_duplicate_pairs":
        [[id_a, id_b, bits], ...], "n_near_duplicates", "n_with_near_duplicate", "flag",
        "reasons"}``: JSON-able; ``mean_distance`` None below 2 images."""
        settings = self.settings
        hashes = np.concatenate(self.hashes) if self.hashes else np.empty(0, np.uint64)
        found = near_duplicates(hashes, settings.max_hamming, settings.max_listed)
        squared = self.spread.mean_squared_distance()
        distance = None if squared is None else math.sqrt(max(squared, 0.0))
        n = len(self.image_ids)
        reasons = []
        if n >= 2 and found.with_duplicate > settings.max_duplicate_share * n:
            reasons.append("near_duplicates")
        if distance is not None and distance < settings.min_mean_distance:
            reasons.append("low_mean_distance")
        ids = self.image_ids
        return {
            "prompt_id": self.prompt_id,
            "n_images": n,
            "mean_distance": distance,
            "near_duplicate_pairs": [[ids[i], ids[j], bits] for i, j, bits in found.pairs],
            "n_near_duplicates": found.count,
            "n_with_near_duplicate": found.with_duplicate,
            "flag": bool(reasons),
            "reasons": reasons,
        }


def prompt_diversity(
    prompt_id: str,
    image_ids: Sequence[str],
    tensors: np.ndarray | Sequence[np.ndarray],
    settings: DiversitySettings | None = None,
) -> dict[str, Any]:
    """The diversity of one prompt's images, given as tensors (an (N, C, S, S) batch or a
    list of (C, S, S) arrays); see ``PromptDiversity.result``."""
    measure = PromptDiversity(prompt_id, settings)
    if len(tensors):
        shapes = {np.shape(values) for values in tensors}
        if len(shapes) != 1:
            raise StepError(f"{prompt_id}: tensors differ in shape: {sorted(shapes)}")
        measure.add(image_ids, np.asarray(tensors))
    elif len(image_ids):
        raise StepError(f"{prompt_id}: {len(image_ids)} image ids, no tensors")
    return measure.result()


def files_diversity(
    prompt_id: str,
    tensor_paths: Sequence[str | Path],
    image_ids: Sequence[str] | None = None,
    settings: DiversitySettings | None = None,
) -> dict[str, Any]:
    """The diversity of one prompt's ``.npy`` tensors (checked by ``load_tensor``), read
    ``CHUNK`` at a time; image ids default to the files' stems."""
    ids = list(image_ids) if image_ids is not None else [Path(path).stem for path in tensor_paths]
    if len(ids) != len(tensor_paths):
        raise StepError(f"{prompt_id}: {len(ids)} image ids, {len(tensor_paths)} tensors")
    measure = PromptDiversity(prompt_id, settings)
    for start in range(0, len(ids), CHUNK):
        chunk = [load_tensor(path) for path in tensor_paths[start : start + CHUNK]]
        shapes = {tensor.shape for tensor in chunk}
        if len(shapes) != 1:
            raise StepError(f"{prompt_id}: tensors differ in shape: {sorted(shapes)}")
        measure.add(ids[start : start + CHUNK], np.stack(chunk))
    return measure.result()


# ---- a shard's document, shards merged, the least diverse


def diversity_document(
    results: Iterable[Mapping[str, Any]], settings: DiversitySettings | None = None
) -> dict[str, Any]:
    """A shard's prompts' results as one JSON document, with the settings they used."""
    return {
        "schema": SCHEMA,
        "settings": asdict(settings or DiversitySettings()),
        "prompts": [dict(result) for result in results],
    }


def shard_diversity(
    tensor_dir: str | Path,
    images: Mapping[str, int],
    layout: ShardLayout,
    settings: DiversitySettings | None = None,
) -> dict[str, Any]:
    """The document of a shard's prompts (``images``: prompt id -> number of images), from
    their tensors in ``tensor_dir`` (the preprocess step's output, ``layout`` as it wrote it)."""
    results = [
        files_diversity(batch.prompt_id, batch.tensor_paths, batch.image_ids, settings)
        for batch in shard_batches(tensor_dir, images, layout)
    ]
    return diversity_document(results, settings)
