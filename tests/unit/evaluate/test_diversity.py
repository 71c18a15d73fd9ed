"""Diversity per prompt: the hashes, the pairwise-distance identity, near-duplicate pairs,
the flag on duplicates and not on diverse pictures, determinism."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdcnn.core.errors import StepError
from sdcnn.demo.pictures import draw_picture, random_spec
from sdcnn.evaluate import diversity
from sdcnn.evaluate.diversity import (
    HASHES,
    DiversitySettings,
    dhash,
    diversity_document,
    files_diversity,
    hamming,
    hash_hex,
    near_duplicates,
    pack_bits,
    phash,
    prompt_diversity,
)
from sdcnn.evaluate.diversity_results import least_diverse, merge_documents


def tensor(rgb: np.ndarray) -> np.ndarray:
    """An 8-bit RGB picture as the preprocess step's tensor: float32 (3, S, S) in [0, 1]."""
    return (rgb.astype(np.float32) / 255).transpose(2, 0, 1).copy()


def picture(seed: int) -> np.ndarray:
    return tensor(draw_picture(seed)[0])


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]


def noisy(values: np.ndarray, seed: int, sigma: float = 0.004) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(values + rng.normal(0, sigma, values.shape), 0, 1).astype(np.float32)


def texture(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random colour field, as textured as a photograph at this size."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 3)
    field = (field - field.min()) / (field.max() - field.min())
    return field.transpose(2, 0, 1).copy()


def distances(batch: np.ndarray, hash_name: str) -> np.ndarray:
    """Bits between the first tensor's hash and each tensor's."""
    hashes = HASHES[hash_name](np.stack(batch))
    return hamming(hashes[0], hashes)


# ---- the hashes


@pytest.mark.parametrize("name", sorted(HASHES))
def test_identical_images_hash_alike(name: str) -> None:
    batch = [picture(3), picture(3), texture(1), texture(1)]
    hashes = HASHES[name](np.stack(batch))
    assert hashes[0] == hashes[1] and hashes[2] == hashes[3]
    assert hashes.dtype == np.uint64


def test_phash_stands_noise_and_reencoding() -> None:
    for seed in range(6):
        rgb = draw_picture(seed)[0]
        copies = [tensor(rgb), *(noisy(tensor(rgb), k) for k in range(3))]
        copies += [tensor(jpeg(rgb, 90)), tensor(jpeg(rgb, 75))]
        assert distances(copies, "phash").max() <= 4, seed


@pytest.mark.parametrize("name", sorted(HASHES))
def test_shifted_and_noisy_textures_hash_close_unrelated_ones_far(name: str) -> None:
    fields = [texture(seed) for seed in range(8)]
    for field in fields:
        shifted = [np.roll(field, step, axis) for step in (1, -1) for axis in (1, 2)]
        assert distances([field, *shifted, noisy(field, 0)], name).max() <= 12
    hashes = HASHES[name](np.stack(fields))
    assert min(hamming(a, b) for a, b in itertools.combinations(hashes, 2)) >= 20


def test_phash_tells_different_demo_pictures_apart() -> None:
    hashes = phash(np.stack([picture(seed) for seed in range(12)]))
    assert min(hamming(a, b) for a, b in itertools.combinations(hashes, 2)) > 8


def test_phash_follows_imagehash_definition() -> None:
    """imagehash.phash: DCT-II of the 32 x 32 grayscale, 8 x 8 lowest, above their median;
    here from OpenCV's orthonormal DCT, rescaled to scipy's unnormalised one."""
    for image in (picture(5), texture(2), texture(3, size=32)):
        value = phash(image[None])[0]
        gray = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
        gray = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        coefficients = cv2.dct(gray.astype(np.float64))[:8, :8]
        coefficients[0, :] *= math.sqrt(2)
        coefficients[:, 0] *= math.sqrt(2)
        bits = (coefficients > np.median(coefficients)).ravel()
        assert hash_hex(value) == "".join(f"{b:x}" for b in np.packbits(bits)).rjust(16, "0")
        assert int(value) == int("".join("1" if bit else "0" for bit in bits), 2)


def test_dhash_bits_are_row_major_right_brighter_than_left() -> None:
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (1, 64, 1))  # brighter to the right
    assert hash_hex(dhash(np.stack([ramp, ramp[:, :, ::-1].copy()]))[0]) == "f" * 16
    assert dhash(ramp[None, :, :, ::-1].copy())[0] == 0
    first = np.zeros((1, 64), bool)
    first[0, 0] = True
    assert pack_bits(first)[0] == np.uint64(1 << 63)


def test_grayscale_and_colour_tensors_both_hash() -> None:
    colour = picture(4)
    gray = (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])[None].astype(np.float32)
    assert phash(colour[None])[0] == phash(gray[None])[0]
    with pytest.raises(StepError, match="tensors"):
        phash(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(StepError, match="differ in shape"):
        prompt_diversity("p", ["a", "b"], [colour, gray])
    with pytest.raises(StepError, match="2 image ids, 1 tensors"):
        prompt_diversity("p", ["a", "b"], [colour])


# ---- the mean distance


def brute_force_mean_distance(batch: np.ndarray) -> float:
    squared = [
        np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
        for a, b in itertools.combinations(batch, 2)
    ]
    return math.sqrt(sum(squared) / len(squared))


@pytest.mark.parametrize("chunk", [256, 3, 1])
def test_mean_distance_is_the_brute_force_one(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(diversity, "CHUNK", chunk)
    rng = np.random.default_rng(7)
    batch = rng.random((11, 3, 16, 16)).astype(np.float32)
    result = prompt_diversity("p", [str(k) for k in range(11)], batch)
    assert result["mean_distance"] == pytest.approx(brute_force_mean_distance(batch), rel=1e-12)
    pictures = np.stack([picture(seed) for seed in range(7)])
    result = prompt_diversity("p", [str(k) for k in range(7)], pictures)
    assert result["mean_distance"] == pytest.approx(brute_force_mean_distance(pictures), rel=1e-12)


def test_mean_distance_bounds() -> None:
    same = prompt_diversity("p", ["a", "b", "c"], np.stack([picture(1)] * 3))
    assert same["mean_distance"] == 0.0
    black_white = np.stack([np.zeros((1, 4, 4), np.float32), np.ones((1, 4, 4), np.float32)])
    assert prompt_diversity("p", ["a", "b"], black_white)["mean_distance"] == 1.0
    one = prompt_diversity("p", ["a"], picture(1)[None])
    assert one["mean_distance"] is None and not one["flag"]
    none = prompt_diversity("p", [], [])
    assert none["n_images"] == 0 and none["mean_distance"] is None and not none["flag"]


# ---- near-duplicate pairs


def test_near_duplicate_pairs_are_the_brute_force_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diversity, "BLOCK", 50)  # several blocks of rows
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 60, dtype=np.uint64)
    for index in range(0, 60, 7):  # plant copies 0 to 3 bits away
        hashes[index + 1] = hashes[index] ^ np.uint64((1 << (index % 4)) - 1)
    hashes[59] = hashes[0]
    expected = sorted(
        (int(hamming(hashes[i], hashes[j])), i, j)
        for i, j in itertools.combinations(range(60), 2)
        if hamming(hashes[i], hashes[j]) <= 4
    )
    found = near_duplicates(hashes, 4, 1000)
    assert found.pairs == [(i, j, bits) for bits, i, j in expected]
    assert found.count == len(expected)
    assert found.with_duplicate == len({k for _, i, j in expected for k in (i, j)})
    listed = near_duplicates(hashes, 4, 3)
    assert listed.pairs == found.pairs[:3] and listed.count == found.count


# ---- acceptance: duplicates flagged, diverse prompts not


def test_a_prompt_of_one_image_saved_many_times_is_flagged() -> None:
    result = prompt_diversity("copies", [f"img_{k}" for k in range(8)], [picture(2)] * 8)
    assert result["flag"] and result["reasons"] == ["near_duplicates", "low_mean_distance"]
    assert result["n_near_duplicates"] == 28 and result["n_with_near_duplicate"] == 8
    assert result["near_duplicate_pairs"][0] == ["img_0", "img_1", 0]


def test_a_prompt_of_noisy_and_reencoded_copies_is_flagged() -> None:
    rgb = draw_picture(9)[0]
    copies = [tensor(rgb), noisy(tensor(rgb), 1), noisy(tensor(rgb), 2)]
    copies += [tensor(jpeg(rgb, 90)), tensor(jpeg(rgb, 75)), tensor(jpeg(jpeg(rgb, 80), 85))]
    result = prompt_diversity("near", [f"img_{k}" for k in range(6)], copies)
    assert result["flag"] and set(result["reasons"]) == {"near_duplicates", "low_mean_distance"}
    assert result["n_with_near_duplicate"] == 6
    assert result["mean_distance"] < 0.05


def test_one_copy_among_diverse_pictures_is_flagged_by_its_pair() -> None:
    batch = [picture(seed) for seed in range(10)] + [tensor(jpeg(draw_picture(4)[0], 90))]
    result = prompt_diversity("p", [f"img_{k}" for k in range(11)], batch)
    assert result["reasons"] == ["near_duplicates"]
    assert [pair[:2] for pair in result["near_duplicate_pairs"]] == [["img_4", "img_10"]]
    loose = DiversitySettings(max_duplicate_share=0.2)  # 2 of 11 images: not enough
    assert not prompt_diversity("p", [f"img_{k}" for k in range(11)], batch, loose)["flag"]


def test_diverse_demo_pictures_are_not_flagged() -> None:
    mixed = prompt_diversity("mixed", [str(s) for s in range(12)], [picture(s) for s in range(12)])
    assert not mixed["flag"] and mixed["n_near_duplicates"] == 0
    assert mixed["mean_distance"] > 0.2
    seeds = [seed for seed in range(400) if random_spec(seed).prompt == "a red circle"][:12]
    one_prompt = prompt_diversity("red_circle", list(map(str, seeds)), list(map(picture, seeds)))
    assert not one_prompt["flag"] and one_prompt["mean_distance"] > 0.2


# ---- determinism, files, documents


def test_the_same_images_give_the_same_result_byte_for_byte(tmp_path: Path) -> None:
    batch = [picture(seed) for seed in range(6)] + [picture(0)]
    ids = [f"img_{k}" for k in range(7)]
    first = json.dumps(prompt_diversity("p", ids, batch), allow_nan=False)
    assert json.dumps(prompt_diversity("p", ids, np.stack(batch))) == first
    paths = []
    for image_id, values in zip(ids, batch, strict=True):
        paths.append(tmp_path / f"{image_id}.npy")
        np.save(paths[-1], values)
    assert json.dumps(files_diversity("p", paths)) == first


def test_files_diversity_reads_in_chunks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    batch = [picture(seed) for seed in range(5)]
    paths = []
    for index, values in enumerate(batch):
        paths.append(tmp_path / f"{index}.npy")
        np.save(paths[-1], values)
    whole = files_diversity("p", paths)
    monkeypatch.setattr(diversity, "CHUNK", 2)
    chunked = files_diversity("p", paths)
    assert chunked["mean_distance"] == pytest.approx(whole["mean_distance"], rel=1e-12)
    assert {**chunked, "mean_distance": 0} == {**whole, "mean_distance": 0}


def test_shard_documents_merge_in_prompt_order() -> None:
    results = [prompt_diversity(f"p{k}", ["a", "b"], [picture(k), picture(k + 1)]) for k in (1, 2)]
    copies = prompt_diversity("p3", ["a", "b"], [picture(3), picture(3)])
    shards = [diversity_document(results), diversity_document([copies])]
    merged = merge_documents(json.loads(json.dumps(shards)), ["p3", "p1", "p2"])
    assert [result["prompt_id"] for result in merged["prompts"]] == ["p3", "p1", "p2"]
    assert merged["settings"]["max_hamming"] == 4
    assert [r["prompt_id"] for r in least_diverse(merged["prompts"], 2)][0] == "p3"
    with pytest.raises(StepError, match="no diversity for the prompt"):
        merge_documents(shards, ["p9"])
    with pytest.raises(StepError, match="two diversity documents"):
        merge_documents([shards[1], shards[1]])
    other = diversity_document([], DiversitySettings(max_hamming=2))
    with pytest.raises(StepError, match="other settings"):
        merge_documents([shards[0], other])


@pytest.mark.parametrize(
    "settings",
    [{"hash": "ahash"}, {"max_hamming": 64}, {"max_duplicate_share": 1.0}, {"max_listed": -1}],
)
def test_settings_out_of_range_are_errors(settings: dict[str, object]) -> None:
    with pytest.raises(StepError):
        DiversitySettings(**settings)  # type: ignore[arg-type]


def test_the_cost_benchmark_runs_on_tiny_inputs() -> None:
    """benchmarks/diversity_cost.py once, tiny: its per-image share of generate adds up."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "diversity_cost.py"
    command = [sys.executable, str(script), "--counts", "3", "--sizes", "32", "--repeats", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    shares = re.findall(r"min ([\d.]+), n=1\)\s+([\d.]+) ms an image = ([\d.]+)% of", result.stdout)
    assert len(shares) == 2, result.stdout  # in memory, and from .npy files
    for seconds, per_image, percent in shares:
        # seconds print to 0.1 ms: per image, within half of that a third, plus rounding
        assert float(per_image) == pytest.approx(float(seconds) / 3 * 1000, abs=0.05 / 3 + 1e-3)
        assert float(percent) == pytest.approx(float(per_image) / 47.5 * 100, abs=2e-3)


def test_a_shard_of_duplicates_is_flagged_and_a_diverse_prompt_is_not(tmp_path: Path) -> None:
    """A shard's document from the preprocess step's folders: the prompt whose images are
    copies of one picture is flagged (both measures), the prompt of different pictures not."""
    from sdcnn.core.shards import ShardLayout
    from sdcnn.demo.pictures import draw_picture
    from sdcnn.evaluate.diversity import shard_diversity
    from sdcnn.evaluate.diversity_results import read_documents
    from sdcnn.preprocess.image_to_tensor import to_tensor

    def write(prompt_id: str, seeds: list[int]) -> None:
        folder = tmp_path / prompt_id
        folder.mkdir()
        for index, seed in enumerate(seeds):
            bgr = np.ascontiguousarray(draw_picture(seed)[0][..., ::-1])
            np.save(folder / f"{prompt_id}_{index:03d}.npy", to_tensor(bgr, 32, True, "auto"))

    write("copies", [5] * 6)
    write("diverse", [10, 11, 12, 13, 14, 15])
    document = shard_diversity(tmp_path, {"copies": 6, "diverse": 6}, ShardLayout(sharded=True))
    results = {result["prompt_id"]: result for result in document["prompts"]}
    assert results["copies"]["flag"] and results["copies"]["mean_distance"] == 0
    assert set(results["copies"]["reasons"]) == {"near_duplicates", "low_mean_distance"}
    assert results["copies"]["n_near_duplicates"] == 15  # 6 * 5 / 2 pairs
    assert not results["diverse"]["flag"] and results["diverse"]["mean_distance"] > 0.1
    path = tmp_path / "diversity.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert list(read_documents([path])) == [document]


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def result(prompt_id: str, n: int, with_duplicate: int, distance: float | None, flag: bool):
    return {
        "prompt_id": prompt_id,
        "n_images": n,
        "n_with_near_duplicate": with_duplicate,
        "mean_distance": distance,
        "flag": flag,
    }


def test_the_least_diverse_order_is_share_then_distance_then_none() -> None:
    """Among unflagged prompts: the larger share of images in a pair first (a share, not a
    count), then the smaller distance; prompts without a distance, and of no image, last."""
    results = [
        result("none", 1, 0, None, False),
        result("empty", 0, 0, None, False),
        result("far", 4, 0, 0.4, False),
        result("near", 4, 0, 0.1, False),
        result("many-in-many", 100, 10, 0.3, False),  # share 0.1
        result("few-in-few", 4, 2, 0.3, False),  # share 0.5
        result("flagged", 4, 0, 0.9, True),
    ]
    order = [r["prompt_id"] for r in least_diverse(results, len(results))]
    assert order == ["flagged", "few-in-few", "many-in-many", "near", "far", "none", "empty"]
    assert least_diverse(results, 2) == [results[6], results[5]]


def test_merging_names_what_is_wrong() -> None:
    good = {
        "schema": "sdcnn-diversity/1",
        "settings": {},
        "prompts": [result("a", 2, 0, 0.2, False)],
    }
    other = {
        "schema": "sdcnn-diversity/1",
        "settings": {},
        "prompts": [result("b", 2, 0, 0.2, False)],
    }
    merged = merge_documents([other, good])
    assert [r["prompt_id"] for r in merged["prompts"]] == ["b", "a"]  # as found
    assert merged["schema"] == "sdcnn-diversity/1" and merged["settings"] == {}
    with pytest.raises(StepError, match=r"^not a sdcnn-diversity/1 document: schema 'x/1'$"):
        merge_documents([{**good, "schema": "x/1"}])
    missing = [f"m{i:02d}" for i in range(12)]
    with pytest.raises(StepError) as error:
        merge_documents([good], ["a", *missing])
    assert str(error.value) == "no diversity for the prompt(s) " + ", ".join(missing[:10])
