"""The shapes pictures: drawn the same for a seed, and read back right by the checker."""

from __future__ import annotations

import collections
import itertools

import cv2
import numpy as np
import pytest

from sdcnn.demo import pictures
from sdcnn.demo.pictures import (
    BACKGROUND,
    COLOURS,
    SHAPES,
    SIZE,
    PictureSpec,
    analyse_picture,
    describe_picture,
    draw_picture,
    draw_spec,
    random_spec,
)

EVERY_PROMPT = list(itertools.product(COLOURS, SHAPES))


def specs_of(colour: str, shape: str, count: int, seed: int = 0) -> list[PictureSpec]:
    """``count`` pictures of one colour and shape, at the random sizes and places of seeds."""
    return [
        PictureSpec(colour, shape, spec.centre, spec.extent)
        for spec in map(random_spec, range(seed, seed + count))
    ]


def test_vocabulary_holds_at_least_the_basic_colours_and_shapes() -> None:
    assert {"red", "green", "blue", "yellow"} <= set(COLOURS)
    assert {"circle", "square", "triangle"} <= set(SHAPES)
    for rgb in COLOURS.values():
        assert len(rgb) == 3 and all(0 <= value <= 255 for value in rgb)
    assert pictures.vocabulary_prompts()[0] == "a red circle"
    assert len(pictures.vocabulary_prompts()) == len(COLOURS) * len(SHAPES)


def test_a_seed_draws_the_same_picture_and_prompt() -> None:
    for seed in (0, 1, 12345, 2**31 - 1):
        first_image, first_prompt = draw_picture(seed)
        second_image, second_prompt = draw_picture(seed)
        assert first_prompt == second_prompt
        np.testing.assert_array_equal(first_image, second_image)
        assert first_image.dtype == np.uint8 and first_image.shape == (SIZE, SIZE, 3)
    assert not np.array_equal(draw_picture(0)[0], draw_picture(1)[0])


def test_seeds_cover_the_vocabulary_at_varied_sizes_and_places() -> None:
    specs = [random_spec(seed) for seed in range(600)]
    counts = collections.Counter((spec.colour, spec.shape) for spec in specs)
    assert set(counts) == set(EVERY_PROMPT)
    assert min(counts.values()) >= 25  # roughly balanced: 50 each on average
    extents = [spec.extent for spec in specs]
    assert min(extents) < 20 and max(extents) > 36
    xs = [spec.centre[0] for spec in specs]
    ys = [spec.centre[1] for spec in specs]
    assert min(xs) < 20 and max(xs) > SIZE - 20 and min(ys) < 20 and max(ys) > SIZE - 20


def test_a_prompt_names_its_picture() -> None:
    image, prompt = draw_picture(7)
    spec = random_spec(7)
    assert prompt == f"a {spec.colour} {spec.shape}"
    np.testing.assert_array_equal(image, draw_spec(spec))


def test_shapes_keep_clear_of_the_edge_and_the_background_is_plain() -> None:
    for seed in range(200):
        image, _ = draw_picture(seed)
        frame = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (frame == BACKGROUND).all(), seed


def test_the_picture_is_the_shape_colour_and_background_only() -> None:
    spec = PictureSpec("blue", "square", (32.0, 32.0), 20.0)  # covers pixels 22 .. 41
    image = draw_spec(spec)
    assert (image[22:42, 22:42] == COLOURS["blue"]).all()
    blended = ~(image == COLOURS["blue"]).all(axis=2) & ~(image == BACKGROUND).all(axis=2)
    rows, columns = np.nonzero(blended)  # anti-aliasing: only near the edge (OpenCV: 1-2 px)
    assert rows.min() >= 20 and rows.max() <= 43 and columns.min() >= 20 and columns.max() <= 43
    between = image[blended].astype(int)
    assert (
        (between >= np.minimum(COLOURS["blue"], BACKGROUND))
        & (between <= np.maximum(COLOURS["blue"], BACKGROUND))
    ).all()


@pytest.mark.parametrize(("colour", "shape"), EVERY_PROMPT)
def test_checker_recognises_every_colour_and_shape(colour: str, shape: str) -> None:
    for spec in specs_of(colour, shape, 40):
        analysis = analyse_picture(draw_spec(spec))
        assert (analysis.colour, analysis.shape, analysis.blob_count) == (colour, shape, 1), spec


def test_checker_reads_a_thousand_random_pictures() -> None:
    specs = [random_spec(seed) for seed in range(1000)]
    read = [describe_picture(draw_spec(spec)) for spec in specs]
    wanted = [(spec.colour, spec.shape) for spec in specs]
    mistakes = [spec for spec, seen, want in zip(specs, read, wanted, strict=True) if seen != want]
    assert mistakes == []


@pytest.mark.parametrize(("shape", "fill"), [("circle", 0.785), ("square", 1.0), ("triangle", 0.5)])
def test_fill_ratios_are_those_of_the_ideal_shapes(shape: str, fill: float) -> None:
    ratios = [analyse_picture(draw_spec(spec)).fill_ratio for spec in specs_of("red", shape, 50)]
    assert abs(float(np.mean(ratios)) - fill) < 0.04


def degraded(image: np.ndarray, seed: int) -> np.ndarray:
    """What a model's picture looks like: soft edges, noise, a background a little off."""
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(image.astype(np.float64), (3, 3), 0.8)
    shifted = blurred + rng.uniform(-12, 12, size=3)  # the whole picture's tint
    noisy = shifted + rng.normal(0, 8, size=image.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("colour", "shape"), EVERY_PROMPT)
def test_checker_is_robust_to_blur_noise_and_tint(colour: str, shape: str) -> None:
    for index, spec in enumerate(specs_of(colour, shape, 20, seed=100)):
        assert describe_picture(degraded(draw_spec(spec), index)) == (colour, shape), spec


def test_checker_names_the_largest_of_two_shapes() -> None:
    image = draw_spec(PictureSpec("red", "square", (22.0, 22.0), 30.0))
    small = draw_spec(PictureSpec("blue", "circle", (50.0, 50.0), 14.0))
    drawn = (small != BACKGROUND).any(axis=2)
    image[drawn] = small[drawn]
    assert describe_picture(image) == ("red", "square")
    assert analyse_picture(image).blob_count == 2


def test_checker_ignores_specks() -> None:
    image = draw_spec(PictureSpec("green", "triangle", (30.0, 30.0), 24.0))
    image[5, 55] = image[58, 8] = COLOURS["blue"]
    assert describe_picture(image) == ("green", "triangle")
    assert analyse_picture(image).blob_count == 1


def test_checker_finds_nothing_in_a_blank_or_speckled_picture() -> None:
    blank = np.full((SIZE, SIZE, 3), BACKGROUND, np.uint8)
    assert describe_picture(blank) == (None, None)
    blank[10:13, 10:13] = COLOURS["red"]  # 9 pixels: less than a shape
    assert describe_picture(blank) == (None, None)


def test_checker_does_not_name_a_shape_outside_the_vocabulary() -> None:
    image = np.full((SIZE, SIZE, 3), BACKGROUND, np.uint8)
    cv2.circle(image, (32, 32), 20, COLOURS["yellow"], 4)  # a ring, not a filled circle
    colour, shape = describe_picture(image)
    assert colour == "yellow" and shape is None


def test_checker_accepts_only_rgb_pictures() -> None:
    with pytest.raises(ValueError, match="RGB"):
        describe_picture(np.zeros((SIZE, SIZE), np.uint8))


def test_drawing_rejects_what_is_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        draw_spec(PictureSpec("purple", "circle", (32.0, 32.0), 20.0))
