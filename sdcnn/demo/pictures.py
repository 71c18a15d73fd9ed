"""Pictures of one coloured shape on a plain light background, and a checker that reads them.

The demo text-to-image model (``sdcnn.demo.training``) learns from these pictures:
each is ``SIZE`` x ``SIZE`` RGB, one filled shape of one vocabulary colour at a
random position and size, with the prompt ``"a <colour> <shape>"``.  A seed
decides everything, so the same seed draws the same picture, byte for byte.

``describe_picture`` is the independent check of what a picture shows, written
for the model's outputs as much as for drawn pictures: it takes the largest
blob that stands out from the background, names its colour by a vote of its
inner pixels (nearest vocabulary colour) and its shape by which ideal outline,
fitted to the blob's bounding box, overlaps it best.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 64  # pixels, both sides
COLOURS: dict[str, tuple[int, int, int]] = {  # name -> RGB
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 200, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
BACKGROUND: tuple[int, int, int] = (245, 245, 240)  # RGB, behind every shape

MIN_EXTENT, MAX_EXTENT = 16.0, 40.0  # side of the shape's bounding box, pixels
MARGIN = 3.0  # pixels kept free between a shape and the picture's edge
SUBPIXEL_BITS = 4  # OpenCV draws at 1/16 pixel: positions and sizes need not be whole pixels

# A pixel is foreground when some channel differs from the background by more
# than half the smallest such difference of any vocabulary colour: an
# anti-aliased edge pixel counts when the shape covers at least half of it.
FOREGROUND_THRESHOLD = (
    min(max(abs(c - b) for c, b in zip(rgb, BACKGROUND, strict=True)) for rgb in COLOURS.values())
    // 2
)
MIN_BLOB_PIXELS = 24  # a smaller largest blob is "nothing drawn"
MIN_SHAPE_IOU = 0.6  # below this overlap with every ideal outline the shape has no name


@dataclass(frozen=True)
class PictureSpec:
    """What to draw: a shape's colour, kind, centre (x, y) and bounding-box side, in pixels."""

    colour: str
    shape: str
    centre: tuple[float, float]
    extent: float

    @property
    def prompt(self) -> str:
        return prompt_for(self.colour, self.shape)


@dataclass(frozen=True)
class PictureAnalysis:
    """What ``analyse_picture`` found; ``colour`` and ``shape`` are ``None`` when unnamed."""

    colour: str | None
    shape: str | None
    blob_pixels: int  # pixels of the largest foreground blob
    blob_count: int  # foreground blobs of at least MIN_BLOB_PIXELS (1 for a drawn picture)
    fill_ratio: float  # blob pixels / its bounding box (circle 0.785, square 1, triangle 0.5)
    colour_share: float  # share of the blob's inner pixels that voted for ``colour``
    shape_iou: dict[str, float]  # overlap of the blob with each ideal outline


def prompt_for(colour: str, shape: str) -> str:
    return f"a {colour} {shape}"


def vocabulary_prompts() -> list[str]:
    """Every prompt the vocabulary can make, colour-major."""
    return [prompt_for(colour, shape) for colour, shape in itertools.product(COLOURS, SHAPES)]


def random_spec(seed: int) -> PictureSpec:
    """A colour, a shape, a size and a position, all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    extent = float(rng.uniform(MIN_EXTENT, MAX_EXTENT))
    low, high = MARGIN + extent / 2, SIZE - MARGIN - extent / 2
    centre = (float(rng.uniform(low, high)), float(rng.uniform(low, high)))
    return PictureSpec(colour, shape, centre, extent)


def shape_outline(shape: str, centre: tuple[float, float], extent: float) -> np.ndarray:
    """The polygon corners (x, y) of a square or an upright triangle filling the box."""
    x, y = centre
    left, right, top, bottom = x - extent / 2, x + extent / 2, y - extent / 2, y + extent / 2
    if shape == "square":
        corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    elif shape == "triangle":  # apex at the top middle, base along the bottom: fills half the box
        corners = [(x, top), (right, bottom), (left, bottom)]
    else:
        raise ValueError(f"{shape!r} has no polygon outline")
    return np.array(corners, np.float64)


def _fixed_point(values: np.ndarray | float) -> np.ndarray:
    """OpenCV's sub-pixel coordinates: integers in units of 1 / 2**SUBPIXEL_BITS pixel.

    OpenCV puts pixel centres on whole coordinates; the half-pixel shift maps
    this module's continuous coordinates (pixel i spans [i, i + 1]) onto them.
    """
    return np.round((np.asarray(values) - 0.5) * (1 << SUBPIXEL_BITS)).astype(np.int32)


def draw_spec(spec: PictureSpec, size: int = SIZE) -> np.ndarray:
    """The picture of ``spec``: uint8 RGB, ``size`` x ``size`` x 3, edges anti-aliased."""
    if spec.colour not in COLOURS or spec.shape not in SHAPES:
        raise ValueError(f"{spec.prompt!r} is outside the vocabulary")
    image = np.empty((size, size, 3), np.uint8)
    image[:] = BACKGROUND
    colour = COLOURS[spec.colour]
    if spec.shape == "circle":
        centre = tuple(int(value) for value in _fixed_point(np.array(spec.centre)))
        radius = int(round(spec.extent / 2 * (1 << SUBPIXEL_BITS)))
        cv2.circle(image, centre, radius, colour, cv2.FILLED, cv2.LINE_AA, SUBPIXEL_BITS)
    else:
        corners = _fixed_point(shape_outline(spec.shape, spec.centre, spec.extent))
        cv2.fillPoly(image, [corners], colour, cv2.LINE_AA, SUBPIXEL_BITS)
    return image


def draw_picture(seed: int) -> tuple[np.ndarray, str]:
    """The picture of ``seed`` (uint8 RGB, ``SIZE`` x ``SIZE`` x 3) and its prompt."""
    spec = random_spec(seed)
    return draw_spec(spec), spec.prompt


def estimated_background(pixels: np.ndarray) -> np.ndarray:
    """The median colour of the picture's one-pixel frame (shapes keep clear of it)."""
    frame = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return np.median(frame, axis=0)


def blobs_by_size(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected regions of a boolean mask of at least ``MIN_BLOB_PIXELS``, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    areas = stats[1:count, cv2.CC_STAT_AREA]
    order = [1 + int(index) for index in np.argsort(-areas, kind="stable")]
    return [labels == label for label in order if stats[label, cv2.CC_STAT_AREA] >= MIN_BLOB_PIXELS]


def ideal_masks(height: int, width: int) -> dict[str, np.ndarray]:
    """Each vocabulary shape drawn to fill a ``width`` x ``height`` box, as boolean masks."""
    rows, columns = np.mgrid[0:height, 0:width]
    x = (columns + 0.5) / width  # pixel centres in [0, 1]
    y = (rows + 0.5) / height
    masks = {
        "circle": (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25,
        "square": np.ones((height, width), bool),
        "triangle": np.abs(x - 0.5) <= y / 2,
    }
    return {shape: masks[shape] for shape in SHAPES}


def _iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.count_nonzero(first | second)
    return np.count_nonzero(first & second) / union if union else 0.0


def nearest_colour_names(rgb: np.ndarray) -> list[str]:
    """The nearest vocabulary colour (Euclidean RGB) of each row of an N x 3 array."""
    names = list(COLOURS)
    palette = np.array([COLOURS[name] for name in names], np.float64)
    distances = np.linalg.norm(rgb[:, None, :].astype(np.float64) - palette[None], axis=2)
    return [names[index] for index in np.argmin(distances, axis=1)]


def _colour_vote(pixels: np.ndarray, blob: np.ndarray) -> tuple[str, float]:
    """The colour most of the blob's inner pixels are nearest to, and its share of the vote.

    Edge pixels blend with the background (red and white make pink, which is
    nearer yellow), so the blob is first eroded by one pixel when it can spare it.
    """
    inner = cv2.erode(blob.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    voters = pixels[inner if np.count_nonzero(inner) >= MIN_BLOB_PIXELS // 2 else blob]
    names, counts = np.unique(nearest_colour_names(voters), return_counts=True)
    best = int(np.argmax(counts))
    return str(names[best]), float(counts[best] / counts.sum())


def analyse_picture(pixels: np.ndarray) -> PictureAnalysis:
    """Find the dominant shape of an RGB picture and name its colour and kind."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB picture, got shape {pixels.shape}")
    difference = np.abs(pixels.astype(np.int16) - estimated_background(pixels)).max(axis=2)
    blobs = blobs_by_size(difference > FOREGROUND_THRESHOLD)
    if not blobs:
        return PictureAnalysis(None, None, 0, 0, 0.0, 0.0, {})
    blob = blobs[0]
    blob_pixels = int(np.count_nonzero(blob))
    rows, columns = np.nonzero(blob)
    box = blob[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ious = {shape: _iou(box, ideal) for shape, ideal in ideal_masks(*box.shape).items()}
    best_shape = max(ious, key=ious.__getitem__)
    colour, share = _colour_vote(pixels, blob)
    return PictureAnalysis(
        colour=colour,
        shape=best_shape if ious[best_shape] >= MIN_SHAPE_IOU else None,
        blob_pixels=blob_pixels,
        blob_count=len(blobs),
        fill_ratio=blob_pixels / box.size,
        colour_share=share,
        shape_iou=ious,
    )


def describe_picture(pixels: np.ndarray) -> tuple[str | None, str | None]:
    """``(colour, shape)`` of the picture's dominant shape; ``None`` for what it cannot name."""
    analysis = analyse_picture(pixels)
    return analysis.colour, analysis.shape
