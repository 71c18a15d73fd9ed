"""Preprocessing on images whose tensors can be worked out by hand."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sdcnn.core.errors import StepError
from sdcnn.core.shards import ShardLayout
from sdcnn.preprocess import image_to_tensor
from sdcnn.preprocess.image_to_tensor import (
    interpolation_flag,
    preprocess_prompt,
    preprocess_shard,
    preview_png_bytes,
    read_image,
    to_tensor,
)


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
        images, tmp_path / "tensors", tmp_path / "previews", ["p_000"],
        size=2, grayscale=True, interpolation="area",
    )  # fmt: skip
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
            images, tmp_path / "tensors", tmp_path / "previews", ["p_000", "p_001"],
            size=2, grayscale=True, interpolation="area",
        )  # fmt: skip
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
    preprocess_prompt(tmp_path / "images", tmp_path / "t", tmp_path / "v", stems, size=16,
                      grayscale=False, interpolation="nearest")  # fmt: skip
    original = cv2.imread(str(tmp_path / "images" / "p_000.png"), cv2.IMREAD_COLOR)
    preview = cv2.imread(str(tmp_path / "v" / "p_000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(preview, original, err_msg="preview channels are swapped")


def test_threads_change_no_output(tmp_path: Path) -> None:
    stems = write_pngs(tmp_path / "images", 5)
    outputs = {}
    for threads in (1, 2, 3):
        out = tmp_path / f"threads{threads}"
        preprocess_prompt(tmp_path / "images", out / "t", out / "v", stems, size=8,
                          grayscale=True, interpolation="area", threads=threads)  # fmt: skip
        outputs[threads] = {p.relative_to(out).as_posix(): p.read_bytes()
                            for p in sorted(out.rglob("*")) if p.is_file()}  # fmt: skip
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
        tmp_path / "images", tmp_path / "tensors", tmp_path / "previews", stems_by_prompt,
        ShardLayout(sharded=True), size=2, grayscale=True, interpolation="area",
    )  # fmt: skip
    assert count == 3
    expected = sorted(f"{p}/{stem}" for p, stems in stems_by_prompt.items() for stem in stems)
    for kind, suffix in (("tensors", ".npy"), ("previews", ".png")):
        files = sorted(path.relative_to(tmp_path / kind).as_posix().removesuffix(suffix)
                       for path in (tmp_path / kind).rglob(f"*{suffix}"))  # fmt: skip
        assert files == expected, kind
    for prompt_id, stems in stems_by_prompt.items():
        for stem in stems:
            tensor = np.load(tmp_path / "tensors" / prompt_id / f"{stem}.npy", allow_pickle=False)
            np.testing.assert_array_equal(np.rint(tensor * 255), np.full((1, 2, 2), levels[stem]))
            preview = cv2.imread(str(tmp_path / "previews" / prompt_id / f"{stem}.png"),
                                 cv2.IMREAD_UNCHANGED)  # fmt: skip
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
    preprocess_prompt(tmp_path / "images", tmp_path / "t", tmp_path / "v", stems, size=8,
                      grayscale=True, interpolation="area", threads=2)  # fmt: skip
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
