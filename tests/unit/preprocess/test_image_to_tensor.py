"""Preprocessing (sdcnn/preprocess/image_to_tensor.py): images whose tensors can be worked out
by hand, resizing and grayscale against independent NumPy references, bad images named, and
every ``preprocess`` setting changes the tensor of a non-flat image or is listed.

Flat quadrants cannot tell the interpolation modes apart (every mode copies a flat
colour), so the interpolation tests use noise, gradients and checkerboards, and compute
what each mode must give from its textbook definition, written here without OpenCV:

- ``nearest``: output pixel i takes source pixel floor(i * src / dst) (OpenCV's
  INTER_NEAREST: no half-pixel offset);
- ``area`` (shrinking): each output pixel is the mean of the source area it covers,
  weighted by overlap; for an integer factor k, the mean of a k x k block;
- ``linear``, ``cubic``, ``lanczos``: separable kernels sampled at OpenCV's half-pixel
  centres, x = (i + 0.5) * src / dst - 0.5, with the border replicated: the tent
  (1 - |t|), Keys' cubic with a = -0.75, and Lanczos-4 (sinc(t) sinc(t / 4), |t| < 4, its
  8 taps normalised to sum 1);
- grayscale: ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B.

OpenCV computes 8-bit resizes in fixed point (11-bit weights) and rounds to 8 bits, so a
result may differ from the exact value by up to one level: TOLERANCE.  A mode mapped to
another flag lands tens of levels off on noise; ``test_the_references_tell_every_mode_apart``
checks that this is so for every pair of modes and every case used."""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from sdcnn.core.errors import StepError
from sdcnn.core.shards import ShardLayout
from sdcnn.preprocess import image_to_tensor
from sdcnn.preprocess.image_to_tensor import (
    INTERPOLATIONS,
    interpolation_flag,
    preprocess_image,
    preprocess_prompt,
    preprocess_shard,
    preview_png_bytes,
    read_image,
    to_tensor,
)
from tests.support.settings import DEFAULTS, unplaced_keys


def quadrants(values: tuple[int, int, int, int], side: int = 4) -> np.ndarray:
    """A gray BGR image of four flat quadrants: top-left, top-right, bottom-left, bottom-right."""
    half = side // 2
    image = np.zeros((side, side, 3), np.uint8)
    image[:half, :half], image[:half, half:] = values[0], values[1]
    image[half:, :half], image[half:, half:] = values[2], values[3]
    return image


def test_area_shrink_averages_each_block() -> None:
    tensor = to_tensor(quadrants((0, 255, 100, 50)), size=2, grayscale=True, interpolation="area")
    expected = np.array([[[0, 255], [100, 50]]], np.float32) / np.float32(255)
    assert tensor.dtype == np.float32 and tensor.shape == (1, 2, 2)
    np.testing.assert_array_equal(tensor, expected)


def test_grayscale_uses_bt601_luma() -> None:
    red_bgr = np.zeros((8, 8, 3), np.uint8)
    red_bgr[..., 2] = 255  # 0.299 * 255 = 76.2 -> 76
    tensor = to_tensor(red_bgr, size=4, grayscale=True, interpolation="area")
    np.testing.assert_array_equal(tensor, np.full((1, 4, 4), 76 / 255, np.float32))


def test_colour_is_rgb_channels_first() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    tensor = to_tensor(image, size=2, grayscale=False, interpolation="area")
    assert tensor.shape == (3, 2, 2)
    np.testing.assert_array_equal(tensor[:, 0, 0], np.array([30, 20, 10], np.float32) / 255)


def test_auto_interpolation_is_area_when_shrinking_else_cubic() -> None:
    assert interpolation_flag("auto", (512, 512), 224) == cv2.INTER_AREA
    assert interpolation_flag("auto", (64, 64), 224) == cv2.INTER_CUBIC
    assert interpolation_flag("linear", (512, 512), 224) == cv2.INTER_LINEAR


def test_enlarging_stays_in_unit_range() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tensor = to_tensor(image, size=64, grayscale=True, interpolation="auto")
    assert tensor.shape == (1, 64, 64)
    assert tensor.min() >= 0 and tensor.max() <= 1


def test_prompt_folder_round_trip(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "p_000.png"), quadrants((0, 255, 100, 50), side=8))
    preprocess_prompt(
        images,
        tmp_path / "tensors",
        tmp_path / "previews",
        ["p_000"],
        size=2,
        grayscale=True,
        interpolation="area",
    )
    tensor = np.load(tmp_path / "tensors" / "p_000.npy", allow_pickle=False)
    np.testing.assert_array_equal(tensor[0] * 255, [[0, 255], [100, 50]])
    preview = cv2.imread(str(tmp_path / "previews" / "p_000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(preview, [[0, 255], [100, 50]])


@pytest.mark.parametrize("content", [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_unreadable_image_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(StepError, match="broken.png"):
        read_image(path)


def test_failed_prompt_leaves_no_output(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "p_000.png"), quadrants((1, 2, 3, 4)))
    (images / "p_001.png").write_bytes(b"truncated")
    with pytest.raises(StepError, match="p_001.png"):
        preprocess_prompt(
            images,
            tmp_path / "tensors",
            tmp_path / "previews",
            ["p_000", "p_001"],
            size=2,
            grayscale=True,
            interpolation="area",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


# ---- found unchecked by mutation testing (docs/mutation-testing.md)


def write_pngs(folder: Path, count: int) -> list[str]:
    import cv2

    folder.mkdir(parents=True)
    stems = [f"p_{index:03d}" for index in range(count)]
    rng = np.random.default_rng(9)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}.png"), rng.integers(0, 256, (16, 16, 3), np.uint8))
    return stems


def test_a_colour_preview_shows_the_images_own_colours(tmp_path: Path) -> None:
    import cv2

    stems = write_pngs(tmp_path / "images", 1)
    preprocess_prompt(
        tmp_path / "images",
        tmp_path / "t",
        tmp_path / "v",
        stems,
        size=16,
        grayscale=False,
        interpolation="nearest",
    )
    original = cv2.imread(str(tmp_path / "images" / "p_000.png"), cv2.IMREAD_COLOR)
    preview = cv2.imread(str(tmp_path / "v" / "p_000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(preview, original, err_msg="preview channels are swapped")


def test_threads_change_no_output(tmp_path: Path) -> None:
    stems = write_pngs(tmp_path / "images", 5)
    outputs = {}
    for threads in (1, 2, 3):
        out = tmp_path / f"threads{threads}"
        preprocess_prompt(
            tmp_path / "images",
            out / "t",
            out / "v",
            stems,
            size=8,
            grayscale=True,
            interpolation="area",
            threads=threads,
        )
        outputs[threads] = {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }
    assert len(outputs[1]) == 10, sorted(outputs[1])
    assert outputs[2] == outputs[1] and outputs[3] == outputs[1], "threads changed the outputs"


def test_a_sharded_shard_gets_each_prompts_images_in_its_own_folder(tmp_path: Path) -> None:
    """With shards: ``<tensors>/<prompt>/<image>.npy`` and ``<previews>/<prompt>/<image>.png``
    for every image of every prompt of the shard, each made from its own PNG."""
    stems_by_prompt = {"city": ["city_000", "city_001"], "harbor": ["harbor_000"]}
    levels = {"city_000": 10, "city_001": 20, "harbor_000": 30}  # a flat gray level each
    for prompt_id, stems in stems_by_prompt.items():
        (tmp_path / "images" / prompt_id).mkdir(parents=True)
        for stem in stems:
            flat = np.full((4, 4, 3), levels[stem], np.uint8)
            cv2.imwrite(str(tmp_path / "images" / prompt_id / f"{stem}.png"), flat)
    count = preprocess_shard(
        tmp_path / "images",
        tmp_path / "tensors",
        tmp_path / "previews",
        stems_by_prompt,
        ShardLayout(sharded=True),
        size=2,
        grayscale=True,
        interpolation="area",
    )
    assert count == 3
    expected = sorted(f"{p}/{stem}" for p, stems in stems_by_prompt.items() for stem in stems)
    for kind, suffix in (("tensors", ".npy"), ("previews", ".png")):
        files = sorted(
            path.relative_to(tmp_path / kind).as_posix().removesuffix(suffix)
            for path in (tmp_path / kind).rglob(f"*{suffix}")
        )
        assert files == expected, kind
    for prompt_id, stems in stems_by_prompt.items():
        for stem in stems:
            tensor = np.load(tmp_path / "tensors" / prompt_id / f"{stem}.npy", allow_pickle=False)
            np.testing.assert_array_equal(np.rint(tensor * 255), np.full((1, 2, 2), levels[stem]))
            preview = cv2.imread(
                str(tmp_path / "previews" / prompt_id / f"{stem}.png"), cv2.IMREAD_UNCHANGED
            )
            np.testing.assert_array_equal(preview, np.full((2, 2), levels[stem]))


def test_threads_images_are_made_at_once_but_never_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads`` is the job's reservation of cores: with 2, two images are made at the
    same time (each waits here until another one is being made), never more than two, and
    OpenCV runs no threads of its own inside each resize."""
    stems = write_pngs(tmp_path / "images", 6)
    lock, running, peak = threading.Lock(), [0], [0]
    two_at_once = threading.Barrier(2, timeout=5)
    real = image_to_tensor.preprocess_image

    def probe(*paths: Path, **settings: Any) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            two_at_once.wait()
            time.sleep(0.05)
            real(*paths, **settings)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(image_to_tensor, "preprocess_image", probe)
    cv2.setNumThreads(3)
    preprocess_prompt(
        tmp_path / "images",
        tmp_path / "t",
        tmp_path / "v",
        stems,
        size=8,
        grayscale=True,
        interpolation="area",
        threads=2,
    )
    assert peak[0] == 2, f"{peak[0]} images were made at once with threads=2"
    assert cv2.getNumThreads() == 1, "OpenCV's own threads would come on top of the two"
    assert sorted(path.stem for path in (tmp_path / "t").iterdir()) == stems


def test_a_missing_image_gets_the_steps_error_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No OpenCV warning ("can't open/read file") beside the step's own message in the log."""
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image \(missing, "):
        read_image(tmp_path / "p_000.png")
    assert capfd.readouterr().err == ""


def test_a_preview_that_cannot_be_encoded_is_a_step_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_to_tensor.cv2, "imencode", lambda extension, image: (False, None))
    with pytest.raises(StepError) as caught:
        preview_png_bytes(np.zeros((2, 2), np.uint8))
    assert str(caught.value) == "could not encode the preview PNG"


TOLERANCE = 1.0  # levels of 8 bits; measured worst case 0.85 (lanczos), 0.75 (linear)
BT601 = {"R": 0.299, "G": 0.587, "B": 0.114}


# ---- the references: one (dst x src) weight matrix per axis


def _keys_cubic(t: float, a: float = -0.75) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _lanczos4(t: float) -> float:
    return float(np.sinc(t) * np.sinc(t / 4)) if abs(t) < 4 else 0.0


def _kernel_taps(kernel: str, fraction: float) -> dict[int, float]:
    """Weights of the source pixels floor(x) + k for a sample at floor(x) + fraction."""
    if kernel == "linear":
        return {0: 1 - fraction, 1: fraction}
    if kernel == "cubic":
        return {k: _keys_cubic(fraction - k) for k in (-1, 0, 1, 2)}
    raw = {k: _lanczos4(fraction - k) for k in range(-3, 5)}
    total = sum(raw.values())
    return {k: value / total for k, value in raw.items()}


def weight_matrix(mode: str, src: int, dst: int) -> np.ndarray:
    """Row i: the weight of every source pixel in output pixel i, along one axis."""
    scale = src / dst
    weights = np.zeros((dst, src))
    for i in range(dst):
        if mode == "nearest":
            weights[i, min(math.floor(i * scale), src - 1)] = 1.0
        elif mode == "area":
            assert dst <= src, "the area reference covers shrinking only"
            low, high = i * scale, (i + 1) * scale
            for j in range(math.floor(low), min(math.ceil(high), src)):
                weights[i, j] += (min(high, j + 1) - max(low, j)) / scale
        else:
            centre = (i + 0.5) * scale - 0.5
            base = math.floor(centre)
            for k, value in _kernel_taps(mode, centre - base).items():
                weights[i, min(max(base + k, 0), src - 1)] += value  # replicated border
    return weights


def reference_resize(gray: np.ndarray, size: int, mode: str) -> np.ndarray:
    """What ``mode`` must make of a 2-D image, exactly (float, clipped to 8-bit range)."""
    rows = weight_matrix(mode, gray.shape[0], size)
    columns = weight_matrix(mode, gray.shape[1], size)
    return np.clip(rows @ gray.astype(np.float64) @ columns.T, 0, 255)


def block_means(gray: np.ndarray, factor: int) -> np.ndarray:
    """Area shrinking by an integer factor, the plainest way: the mean of each block."""
    h, w = gray.shape
    return gray.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def bt601_luma(image_bgr: np.ndarray) -> np.ndarray:
    b, g, r = (image_bgr[..., c].astype(np.float64) for c in range(3))
    return BT601["R"] * r + BT601["G"] * g + BT601["B"] * b


# ---- test images (gray BGR: B = G = R, so the gray conversion is the identity)


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def gradient(h: int, w: int) -> np.ndarray:
    """A curved diagonal ramp (quadratic in x, linear in y): linear interpolation is not exact."""
    y, x = np.mgrid[0:h, 0:w]
    return np.round(200 * (x / max(w - 1, 1)) ** 2 + 55 * y / max(h - 1, 1)).astype(np.uint8)


def checkerboard(h: int, w: int, cell: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.where((y // cell + x // cell) % 2 == 0, 250, 5).astype(np.uint8)


IMAGES: dict[str, Callable[[int, int], np.ndarray]] = {
    "noise": noise,
    "gradient": gradient,
    "checkerboard": checkerboard,
}

# (source height, width, output size): shrinking by integer and fractional factors,
# non-square sources, enlarging, and the same size.
SHRINK_CASES = [(64, 64, 32), (64, 64, 16), (60, 60, 20), (64, 64, 24), (30, 45, 16), (64, 48, 33)]
ENLARGE_CASES = [(16, 16, 64), (20, 20, 32), (12, 18, 32)]
CASES = SHRINK_CASES + ENLARGE_CASES + [(37, 37, 37)]


def as_bgr(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def resized_levels(gray: np.ndarray, size: int, mode: str) -> np.ndarray:
    """The project's tensor of ``gray`` in 8-bit levels (the tensor holds level / 255)."""
    tensor = to_tensor(as_bgr(gray), size=size, grayscale=True, interpolation=mode)
    assert tensor.shape == (1, size, size) and tensor.dtype == np.float32, tensor.shape
    return levels_of(tensor[0])


def levels_of(channel: np.ndarray) -> np.ndarray:
    """float32 level / 255 -> the integer level (as float64)."""
    return np.rint(channel.astype(np.float64) * 255)


def assert_matches(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    error = np.abs(actual - expected)
    worst, largest = np.unravel_index(int(np.argmax(error)), error.shape), float(error.max())
    assert largest <= TOLERANCE, (
        f"{what}: differs from the reference by up to {largest:.2f} levels (allowed "
        f"{TOLERANCE}); at {worst}: got {actual[worst]:.1f}, expected {expected[worst]:.2f}; "
        f"{(error > TOLERANCE).mean():.0%} of the pixels are off"
    )


def cases_for(mode: str) -> list[tuple[int, int, int]]:
    return SHRINK_CASES + [(37, 37, 37)] if mode == "area" else CASES


@pytest.mark.parametrize("image", sorted(IMAGES))
@pytest.mark.parametrize("mode", sorted(INTERPOLATIONS))
def test_every_mode_computes_its_kernel(mode: str, image: str) -> None:
    for h, w, size in cases_for(mode):
        gray = IMAGES[image](h, w)
        assert_matches(
            resized_levels(gray, size, mode),
            reference_resize(gray, size, mode),
            f"interpolation {mode!r}, {image} {h}x{w} -> {size}x{size}",
        )


def test_every_configured_mode_has_a_reference() -> None:
    # a new mode in INTERPOLATIONS needs a reference here before it is trusted
    assert sorted(INTERPOLATIONS) == ["area", "cubic", "lanczos", "linear", "nearest"], (
        f"INTERPOLATIONS has {sorted(INTERPOLATIONS)}: add a reference for the new mode"
    )


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_area_shrinking_by_an_integer_factor_gives_block_means(factor: int) -> None:
    gray = noise(12 * factor, 12 * factor, seed=factor)
    assert_matches(
        resized_levels(gray, 12, "area"),
        block_means(gray, factor),
        f"area shrink by {factor}: not the mean of each {factor}x{factor} block",
    )


def test_nearest_copies_the_pixel_at_floor_of_i_times_scale() -> None:
    gray = noise(40, 40, seed=5)
    levels = resized_levels(gray, 16, "nearest")
    picked = [math.floor(i * 40 / 16) for i in range(16)]
    np.testing.assert_array_equal(
        levels, gray[np.ix_(picked, picked)], err_msg="nearest did not copy the selected pixels"
    )


def test_linear_uses_half_pixel_centres() -> None:
    # 4 -> 8 along each axis: output 1 sits at x = 1.5 * 0.5 - 0.5 = 0.25, i.e. 3/4 of pixel 0
    # and 1/4 of pixel 1 (without the half-pixel offset it would be x = 0.5).
    gray = np.array([[0, 200, 40, 120]] * 4, np.uint8)
    row = resized_levels(gray, 8, "linear")[0]
    expected = [0, 50, 150, 160, 80, 60, 100, 120]  # edges replicated
    assert np.abs(row - expected).max() <= TOLERANCE, f"linear row {row}, expected {expected}"


def test_the_references_tell_every_mode_apart() -> None:
    """For every pair of modes, some case puts one mode's real output far outside the other
    mode's reference, so mapping a mode to another OpenCV flag cannot pass the kernel test.
    (Not every case can: shrinking by 2, linear is area; by 3, linear, cubic and lanczos all
    sample the centre pixel.)"""
    outputs = {
        (mode, case): resized_levels(noise(case[0], case[1], seed=1), case[2], mode)
        for mode in INTERPOLATIONS
        for case in cases_for(mode)
    }
    for actual_mode in sorted(INTERPOLATIONS):
        for reference_mode in sorted(set(INTERPOLATIONS) - {actual_mode}):
            apart = [
                case
                for case in cases_for(actual_mode)
                if case in cases_for(reference_mode)
                and np.abs(
                    outputs[actual_mode, case]
                    - reference_resize(noise(case[0], case[1], seed=1), case[2], reference_mode)
                ).max()
                > 4 * TOLERANCE
            ]
            assert apart, (
                f"no case tells {actual_mode!r} from the {reference_mode!r} reference: "
                "a swapped flag would pass"
            )


@pytest.mark.parametrize("mode", ["cubic", "lanczos"])
def test_cubic_and_lanczos_ring_at_an_edge_where_the_others_cannot(mode: str) -> None:
    """A property, beside the kernels: negative lobes overshoot a step edge; nearest, area
    and linear only ever average, so they stay within the step's two levels."""
    step = np.where(np.arange(20) < 10, 60, 190).astype(np.uint8)[np.newaxis].repeat(20, axis=0)
    levels = resized_levels(step, 47, mode)
    assert levels.min() < 60 - 2 and levels.max() > 190 + 2, (
        f"{mode}: {levels.min():.0f}..{levels.max():.0f}, no overshoot beyond 60..190"
    )
    for averaging in ("nearest", "area", "linear"):
        size = 47 if averaging != "area" else 9
        levels = resized_levels(step, size, averaging)
        assert levels.min() >= 60 and levels.max() <= 190, f"{averaging} overshot the step"


@pytest.mark.parametrize(
    "h, w, size, expected",
    [
        (64, 64, 32, "area"),  # shrinking
        (64, 96, 32, "area"),  # both sides shrink
        (96, 40, 32, "area"),
        (16, 16, 32, "cubic"),  # enlarging
        (64, 24, 32, "cubic"),  # one side grows: not shrinking
        (64, 32, 32, "cubic"),  # one side keeps its size: not shrinking
        (37, 37, 37, "cubic"),  # the same size
    ],
)
def test_auto_is_area_when_shrinking_else_cubic(h: int, w: int, size: int, expected: str) -> None:
    for image in sorted(IMAGES):
        gray = IMAGES[image](h, w)
        assert_matches(
            resized_levels(gray, size, "auto"),
            reference_resize(gray, size, expected),
            f"auto on {image} {h}x{w} -> {size}: not {expected}",
        )


# ---- colour: grayscale weights and channel order on non-flat images


def colour_noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_grayscale_uses_the_bt601_weights_on_colour_noise() -> None:
    image = colour_noise(32, 32, seed=2)
    tensor = to_tensor(image, size=32, grayscale=True, interpolation="nearest")  # no resize
    levels = levels_of(tensor[0])
    error = np.abs(levels - bt601_luma(image))
    largest = float(error.max())
    # OpenCV's 14-bit fixed-point weights move the sum by at most 0.012 before rounding
    assert largest <= 0.52, (
        f"gray is not 0.299 R + 0.587 G + 0.114 B: off by up to {largest:.2f} levels "
        f"({(error > 0.52).mean():.0%} of the pixels)"
    )


@pytest.mark.parametrize("channel, weight", [(2, BT601["R"]), (1, BT601["G"]), (0, BT601["B"])])
def test_each_channel_has_its_own_weight(channel: int, weight: float) -> None:
    ramp = np.zeros((16, 256, 3), np.uint8)
    ramp[..., channel] = np.arange(256, dtype=np.uint8)  # one channel, every level
    levels = levels_of(to_tensor(ramp, size=16, grayscale=True, interpolation="area")[0])
    # columns shrink by 16: the mean of weight * level over levels 16k .. 16k + 15, after the
    # gray conversion rounded each to 8 bits (so up to one level off)
    expected = weight * (16 * np.arange(16) + 7.5)
    error = float(np.abs(levels - expected).max())
    assert error <= TOLERANCE, (
        f"BGR channel {channel}: gray is not {weight} x level (off by {error:.2f} levels)"
    )


def test_colour_tensors_are_rgb_with_each_channel_resized_alone() -> None:
    image = colour_noise(48, 48, seed=3)
    tensor = to_tensor(image, size=24, grayscale=False, interpolation="area")
    assert tensor.shape == (3, 24, 24), tensor.shape
    for index, (name, bgr_channel) in enumerate((("R", 2), ("G", 1), ("B", 0))):
        assert_matches(
            levels_of(tensor[index]),
            block_means(image[..., bgr_channel], 2),
            f"tensor channel {index} should be {name} (BGR channel {bgr_channel})",
        )


def test_tensor_values_are_the_8bit_levels_over_255() -> None:
    gray = noise(24, 24, seed=4)
    tensor = to_tensor(as_bgr(gray), size=24, grayscale=True, interpolation="nearest")
    np.testing.assert_array_equal(
        tensor[0], gray.astype(np.float32) / np.float32(255), err_msg="tensor is not level / 255"
    )


def png_bytes(side: int = 16) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- images


@pytest.mark.parametrize(
    "cut", [lambda data: data[: len(data) // 2], lambda data: data[:-12], lambda data: data[:33]]
)
def test_truncated_png_names_the_file(tmp_path: Path, cut) -> None:  # noqa: ANN001
    path = tmp_path / "p_000.png"
    path.write_bytes(cut(png_bytes()))
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(path)


def test_png_with_a_damaged_byte_names_the_file(tmp_path: Path) -> None:
    data = bytearray(png_bytes(64))
    data[len(data) // 2] ^= 0xFF  # inside the compressed pixels: the checksum no longer fits
    (tmp_path / "p_000.png").write_bytes(bytes(data))
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(tmp_path / "p_000.png")


def test_text_file_named_png_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "p_000.png").write_text("<html>404 not found</html>")
    with pytest.raises(StepError, match=r"p_000\.png: not a readable image"):
        read_image(tmp_path / "p_000.png")


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(StepError, match=r"p_009\.png: not a readable image"):
        read_image(tmp_path / "p_009.png")


# ---- preprocessing: the tensor

NOT_IN_THE_TENSOR = {"preprocess.threads": "images are independent: any thread count, same bytes"}
NEW_PREPROCESS_VALUES = {"size": 20, "grayscale": False, "interpolation": "linear"}


def test_every_preprocess_setting_is_placed() -> None:
    unplaced = unplaced_keys("preprocess", NEW_PREPROCESS_VALUES, NOT_IN_THE_TENSOR)
    assert unplaced == [], f"{unplaced}: say how they change the tensor, or why they do not"


def noise_png(path: Path, side: int = 64) -> Path:
    pixels = np.random.default_rng(5).integers(0, 256, (side, side, 3), dtype=np.uint8)
    cv2.imwrite(str(path), pixels)
    return path


def tensor_with(tmp_path: Path, name: str, **settings: Any) -> np.ndarray:
    defaults = {key: DEFAULTS["preprocess"][key] for key in NEW_PREPROCESS_VALUES}
    defaults["size"] = 24  # 64 -> 24: no whole factor, where linear and area agree
    tensor_path = tmp_path / f"{name}.npy"
    preprocess_image(
        noise_png(tmp_path / "noise.png"),
        tensor_path,
        tmp_path / f"{name}.png",
        **{**defaults, **settings},
    )
    return np.load(tensor_path, allow_pickle=False)


@pytest.mark.parametrize("name", NEW_PREPROCESS_VALUES)
def test_every_preprocess_setting_changes_the_tensor(name: str, tmp_path: Path) -> None:
    before = tensor_with(tmp_path, "before")
    after = tensor_with(tmp_path, "after", **{name: NEW_PREPROCESS_VALUES[name]})
    assert before.shape != after.shape or not np.array_equal(before, after), (
        f"preprocess.{name}: {NEW_PREPROCESS_VALUES[name]!r} gives the same tensor"
    )


def test_preprocess_threads_keep_the_bytes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    stems = [f"p_{i:03d}" for i in range(4)]
    for index, stem in enumerate(stems):
        noise_png(images / f"{stem}.png", side=40 + index)
    outputs = []
    for threads in (1, 2):
        folder = tmp_path / f"t{threads}"
        preprocess_prompt(
            images,
            folder / "tensors",
            folder / "previews",
            stems,
            size=32,
            grayscale=True,
            interpolation="auto",
            threads=threads,
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.rglob("*.*"))})
    assert outputs[0] == outputs[1]
