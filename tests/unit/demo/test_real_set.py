"""The shipped real-like set (sdcnn/demo/assets/real-like, sdcnn/demo/real_set.py): the
renderer's exact pictures, for seeds the demo model never trained on, readable as a real set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcnn.demo import real_set
from sdcnn.demo.pictures import SHAPES, describe_picture, draw_picture, random_spec
from sdcnn.demo.real_set import (
    FIRST_SEED,
    PER_LABEL,
    demo_real_folder,
    real_like_seeds,
    write_real_like_set,
)
from sdcnn.demo.training import DEFAULT_OUTPUT
from sdcnn.evaluate.real_images import read_real_images

SHIPPED = demo_real_folder()


def shipped_files(folder: Path) -> dict[str, list[str]]:
    """Label folder -> the names of the files in it, sorted (every file, not only PNGs)."""
    return {
        label.name: sorted(path.name for path in label.rglob("*") if path.is_file())
        for label in sorted(folder.iterdir())
        if label.is_dir()
    }


def read_rgb(path: Path) -> np.ndarray:
    """A PNG's pixels, read by PIL (not the cv2 that wrote them), as uint8 RGB."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB", path
        return np.asarray(image)


def test_shipped_folder_is_the_assets_real_like_folder() -> None:
    expected = Path(real_set.__file__).parent / "assets" / "real-like"
    assert demo_real_folder() == expected
    assert SHIPPED.is_dir()
    assert [path.name for path in SHIPPED.iterdir() if path.is_file()] == []  # labels only


def test_shipped_folder_holds_exactly_the_named_seeds() -> None:
    seeds = real_like_seeds()
    assert list(seeds) == list(SHAPES)
    assert all(len(found) == PER_LABEL == 12 for found in seeds.values())
    assert shipped_files(SHIPPED) == {
        shape: sorted(f"{seed}.png" for seed in found) for shape, found in seeds.items()
    }


def test_seeds_are_the_first_of_each_shape_from_the_first_seed() -> None:
    seeds = real_like_seeds(per_label=3, first_seed=10)
    expected: dict[str, list[int]] = {shape: [] for shape in SHAPES}
    for seed in range(10, 1000):
        found = expected[random_spec(seed).shape]
        if len(found) < 3:
            found.append(seed)
    assert seeds == expected
    assert real_like_seeds(per_label=0) == {shape: [] for shape in SHAPES}
    everything = [seed for found in real_like_seeds().values() for seed in found]
    assert min(everything) == FIRST_SEED
    assert len(set(everything)) == len(everything)


def test_no_seed_is_one_the_model_trained_on() -> None:
    settings = json.loads((DEFAULT_OUTPUT / "training.json").read_text(encoding="utf-8"))
    trained = settings["settings"]["pictures"]  # build_training_set draws seeds 0 .. trained - 1
    assert trained > 0
    for found in real_like_seeds().values():
        assert min(found) >= trained


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shipped_png_is_the_renderers_picture_of_its_label(shape: str) -> None:
    for seed in real_like_seeds()[shape]:
        pixels, prompt = draw_picture(seed)
        assert prompt.endswith(f" {shape}")
        assert random_spec(seed).shape == shape
        shipped = read_rgb(SHIPPED / shape / f"{seed}.png")
        assert shipped.dtype == np.uint8 and shipped.shape == pixels.shape
        np.testing.assert_array_equal(shipped, pixels, err_msg=f"{shape}/{seed}.png")
        assert describe_picture(shipped)[1] == shape  # the independent checker agrees


def test_writing_the_set_again_gives_the_shipped_pixels(tmp_path: Path) -> None:
    stale = tmp_path / "circle" / "7.png"
    stale.parent.mkdir()
    stale.write_bytes(b"not a picture")
    assert write_real_like_set(tmp_path) == len(SHAPES) * PER_LABEL
    assert not stale.exists()
    assert shipped_files(tmp_path) == shipped_files(SHIPPED)
    for shape, names in shipped_files(SHIPPED).items():
        for name in names:
            np.testing.assert_array_equal(
                read_rgb(tmp_path / shape / name), read_rgb(SHIPPED / shape / name), err_msg=name
            )


def test_main_writes_the_set_to_the_folder_named(tmp_path: Path) -> None:
    real_set.main([str(tmp_path / "set")])
    assert shipped_files(tmp_path / "set") == shipped_files(SHIPPED)
    with pytest.raises(SystemExit):
        real_set.main(["one", "two"])


def test_shipped_set_reads_as_a_real_set_with_its_labels() -> None:
    images = read_real_images(SHIPPED, list(SHAPES), check="decode")
    assert len(images) == len(SHAPES) * PER_LABEL == 36
    for image in images:
        assert image.label == image.path.parent.name
        assert random_spec(int(image.path.stem)).shape == image.label
    assert sorted(image.label for image in images) == sorted(
        shape for shape in SHAPES for _ in range(PER_LABEL)
    )
