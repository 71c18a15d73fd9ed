"""sdcnn.evaluate.real_images: a real set from a folder or a sheet, its checks and shards,
and the decoding of odd files (each built here with Pillow or OpenCV)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from sdcnn.core.shards import assign_shards
from sdcnn.evaluate.real_images import (
    RealImage,
    RealImageError,
    check_real_image,
    load_real_image,
    orient,
    preprocess_real_image,
    read_real_images,
    real_image_id,
    shard_real_images,
)
from sdcnn.preprocess.image_to_tensor import preprocess_image, read_image, to_tensor

LABELS = ("cat", "dog")
PROMPT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # config/schema.yaml's rule


def rgb_picture(height: int = 24, width: int = 32) -> np.ndarray:
    """An asymmetric 8-bit RGB picture: a red block top left, a blue one bottom right."""
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[: height // 2, : width // 2] = (255, 0, 0)
    pixels[height // 2 :, width // 2 :] = (0, 0, 255)
    return pixels


def save(path: Path, image: Image.Image, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def refused(path: Path, pattern: str) -> RealImageError:
    """load_real_image refuses ``path`` with a message naming it and matching ``pattern``."""
    with pytest.raises(RealImageError, match=pattern) as caught:
        load_real_image(path)
    assert str(path) in str(caught.value)
    return caught.value


# ---- odd files


def test_a_16_bit_colour_png_is_scaled_to_the_nearest_8_bit_value(tmp_path: Path) -> None:
    values = np.array([0, 128, 129, 1000, 32767, 40000, 65406, 65535], np.uint16)
    bgr16 = np.stack([values, values[::-1], np.full_like(values, 257)], axis=1)[np.newaxis]
    cv2.imwrite(str(tmp_path / "deep.png"), bgr16)
    # round(v * 255 / 65535): 128 -> 0 (0.498), 129 -> 1 (0.502), 1000 -> 4 (3.89), ...
    expected = np.array([0, 0, 1, 4, 127, 156, 254, 255], np.uint8)
    loaded = load_real_image(tmp_path / "deep.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (1, 8, 3)
    assert loaded[0, :, 0].tolist() == expected.tolist()  # B
    assert loaded[0, :, 1].tolist() == expected[::-1].tolist()  # G
    assert loaded[0, :, 2].tolist() == [1] * 8  # R: 257 -> 1


def test_a_16_bit_gray_png_is_scaled_and_replicated(tmp_path: Path) -> None:
    gray = np.array([[0, 1000, 40000, 65535]], np.uint16)
    save(tmp_path / "gray16.png", Image.fromarray(gray))
    loaded = load_real_image(tmp_path / "gray16.png")
    assert loaded.shape == (1, 4, 3)
    assert loaded[0].tolist() == [[v] * 3 for v in (0, 4, 156, 255)]


def test_a_16_bit_png_with_alpha_is_scaled_then_put_on_white(tmp_path: Path) -> None:
    bgra = np.array([[[0, 0, 65535, 65535], [0, 0, 65535, 0]]], np.uint16)
    cv2.imwrite(str(tmp_path / "deep_alpha.png"), bgra)
    assert load_real_image(tmp_path / "deep_alpha.png")[0].tolist() == [
        [0, 0, 255],
        [255, 255, 255],
    ]


def test_a_cmyk_jpeg_is_converted_as_pil_does(tmp_path: Path) -> None:
    path = save(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95)
    loaded = load_real_image(path)
    with Image.open(path) as image:
        assert image.mode == "CMYK"
        expected = np.asarray(image.convert("RGB"))[:, :, ::-1]
    assert np.array_equal(loaded, expected)
    assert np.abs(loaded.astype(int) - (0, 0, 255)).max() <= 3  # red, as BGR


def test_a_palette_png_gives_its_colours(tmp_path: Path) -> None:
    picture = rgb_picture()
    palette = Image.fromarray(picture).convert("P", palette=Image.Palette.ADAPTIVE, colors=3)
    path = save(tmp_path / "palette.png", palette)
    assert Image.open(path).mode == "P"
    assert np.array_equal(load_real_image(path), picture[:, :, ::-1])


def test_a_palette_png_with_a_transparent_index_is_put_on_white(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    path = save(tmp_path / "keyed.png", palette, transparency=0)
    assert load_real_image(path)[0].tolist() == [[255, 255, 255], [50, 100, 200]]


# RGBA pixels and their BGR on white: round((c * a + 255 * (255 - a)) / 255)
ALPHA_PIXELS = [(0, 100, 200, 0), (0, 100, 200, 255), (0, 100, 200, 128), (1, 128, 255, 128)]
ON_WHITE_BGR = [[255, 255, 255], [200, 100, 0], [227, 177, 127], [255, 191, 128]]


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_alpha_is_composited_on_white(tmp_path: Path, suffix: str) -> None:
    rgba = Image.new("RGBA", (4, 1))
    rgba.putdata(ALPHA_PIXELS)
    options = {"lossless": True, "exact": True} if suffix == ".webp" else {}
    path = save(tmp_path / f"alpha{suffix}", rgba, **options)
    assert load_real_image(path)[0].tolist() == ON_WHITE_BGR


def test_gray_with_alpha_is_composited_on_white(tmp_path: Path) -> None:
    gray_alpha = Image.new("LA", (2, 1))
    gray_alpha.putdata([(100, 0), (100, 255)])
    path = save(tmp_path / "la.png", gray_alpha)
    assert load_real_image(path)[0].tolist() == [[255] * 3, [100] * 3]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_grayscale_is_replicated_to_three_channels(tmp_path: Path, suffix: str) -> None:
    gray = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))
    path = save(tmp_path / f"gray{suffix}", Image.fromarray(gray, "L"), quality=90)
    loaded = load_real_image(path)
    assert loaded.shape == (8, 32, 3)
    assert np.array_equal(loaded[:, :, 0], loaded[:, :, 1])
    assert np.array_equal(loaded[:, :, 0], loaded[:, :, 2])
    assert np.array_equal(loaded, read_image(path))  # what OpenCV gives the synthetic path
    if suffix == ".png":
        assert np.array_equal(loaded[:, :, 0], gray)


def test_an_exif_rotated_jpeg_is_loaded_upright(tmp_path: Path) -> None:
    upright = rgb_picture(48, 64)  # landscape, red top left
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(tmp_path / "rotated.jpg", stored, exif=exif, quality=95)
    loaded = load_real_image(path)
    assert loaded.shape == (48, 64, 3)
    assert np.abs(loaded[10, 10].astype(int) - (0, 0, 255)).max() <= 8  # red (BGR), top left
    assert np.abs(loaded[40, 55].astype(int) - (255, 0, 0)).max() <= 8  # blue, bottom right
    assert np.abs(loaded[10, 55].astype(int) - (128, 128, 128)).max() <= 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_as_pil_does(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path / "oriented.png", Image.fromarray(rgb_picture(6, 10)), exif=exif)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))[:, :, ::-1]
    assert np.array_equal(load_real_image(path), expected)
    assert np.array_equal(orient(rgb_picture(6, 10), orientation)[:, :, ::-1], expected)


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_an_animation_gives_its_first_frame(tmp_path: Path, suffix: str) -> None:
    red, blue = (Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255)))
    options = {"lossless": True} if suffix == ".webp" else {}
    path = save(tmp_path / f"moving{suffix}", red, save_all=True, append_images=[blue], **options)
    with Image.open(path) as image:
        assert image.n_frames == 2
    loaded = load_real_image(path)
    assert loaded.shape == (8, 8, 3)
    assert (loaded == (0, 0, 255)).all()  # red, as BGR: the first frame


def test_a_zero_byte_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.png").touch()
    refused(tmp_path / "empty.png", "zero-byte")
    with pytest.raises(RealImageError, match="zero-byte"):
        check_real_image(tmp_path / "empty.png")


def test_a_symlink_loop_and_a_dangling_link_are_refused(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    refused(tmp_path / "a.png", "symbolic link loop")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    refused(tmp_path / "dangling.png", "dangling symbolic link")
    refused(tmp_path / "missing.png", "no such file")


def test_a_truncated_jpeg_is_refused_and_found_by_a_decoding_check(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    whole = save(tmp_path / "whole.jpg", Image.fromarray(noise), quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    refused(cut, "truncated")
    check_real_image(cut)  # the header alone is fine: only decoding finds it
    with pytest.raises(RealImageError, match="truncated") as caught:
        check_real_image(cut, decode=True)
    assert str(cut) in str(caught.value)
    check_real_image(whole, decode=True)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    refused(tmp_path / "notes.png", "not an image")
    (tmp_path / "folder.png").mkdir()
    refused(tmp_path / "folder.png", "not a regular file")


def test_float_pixels_are_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "float.tiff", Image.fromarray(np.ones((4, 4), np.float32)))
    refused(path, "no defined 8-bit scale")
    with pytest.raises(RealImageError, match="no defined 8-bit scale"):
        check_real_image(path)


# ---- the tensor


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
@pytest.mark.parametrize("grayscale", [False, True])
def test_a_real_image_gives_the_synthetic_paths_tensor(
    tmp_path: Path, suffix: str, grayscale: bool
) -> None:
    rng = np.random.default_rng(3)
    picture = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (9, 9), 3)
    path = save(tmp_path / f"picture{suffix}", Image.fromarray(picture))
    settings = {"size": 32, "grayscale": grayscale, "interpolation": "auto"}
    tensor = preprocess_real_image(path, **settings)
    assert tensor.tobytes() == to_tensor(read_image(path), **settings).tobytes()
    assert tensor.shape == (1 if grayscale else 3, 32, 32)


def test_the_written_tensor_and_preview_are_the_preprocess_steps(tmp_path: Path) -> None:
    path = save(tmp_path / "picture.png", Image.fromarray(rgb_picture(40, 50)))
    settings = {"size": 16, "grayscale": False, "interpolation": "area"}
    preprocess_image(
        path, tmp_path / "real.npy", tmp_path / "real.png", **settings, read=load_real_image
    )
    preprocess_image(path, tmp_path / "synthetic.npy", tmp_path / "synthetic.png", **settings)
    for suffix in (".npy", ".png"):
        real, synthetic = (tmp_path / f"{name}{suffix}" for name in ("real", "synthetic"))
        assert real.read_bytes() == synthetic.read_bytes()


# ---- ids and shards


def test_an_id_is_a_safe_stable_file_name_from_the_path_alone() -> None:
    assert real_image_id("cat/001.png") == "cat_001_png-a27aebec26a4"  # never changes
    paths = ["cat/a b.png", "cat/a_b.png", "cat/a-b.png", "Cat/a b.png", "é/ü.jpg", "x" * 300]
    ids = [real_image_id(path) for path in paths]
    assert len(set(ids)) == len(ids)
    assert all(PROMPT_ID.fullmatch(image_id) for image_id in ids)
    assert real_image_id("e\u0301/x.png") == real_image_id("\u00e9/x.png")  # NFD = NFC


def real_set(n: int) -> list[RealImage]:
    return [RealImage(real_image_id(f"cat/{i}.png"), Path(f"cat/{i}.png"), "cat") for i in range(n)]


def test_adding_an_image_changes_only_its_own_shard() -> None:
    before = shard_real_images(real_set(40), 8)
    after = shard_real_images(real_set(41), 8)
    assert sum(map(len, before.values())) == 40
    shard_of = {image.image_id: name for name, images in before.items() for image in images}
    changed = [name for name in after if after[name] != before.get(name)]
    added = real_set(41)[-1]
    assert changed == [name for name, images in after.items() if added in images]
    assert all(
        shard_of[image.image_id] == name
        for name, images in after.items()
        for image in images
        if image != added
    )
    ids = [image.image_id for image in real_set(40)]
    assert {name: [image.image_id for image in images] for name, images in before.items()} == (
        assign_shards(ids, 8)
    )
    assert list(shard_real_images(real_set(2), None)) == ids[:2]


# ---- a folder


def image_folder(root: Path, files: dict[str, tuple[int, int, int]]) -> Path:
    for relative, colour in files.items():
        save(root / relative, Image.new("RGB", (8, 8), colour))
    return root


def test_an_image_folder_gives_its_images_in_path_order(tmp_path: Path) -> None:
    root = image_folder(
        tmp_path / "real",
        {
            "dog/b.jpg": (0, 0, 0),
            "cat/z.png": (1, 1, 1),
            "cat/a.PNG": (2, 2, 2),
            "cat/deeper/c.webp": (3, 3, 3),
        },
    )
    (root / ".DS_Store").write_text("hidden files are skipped")
    (root / "cat" / ".hidden.png").touch()
    images = read_real_images(root, LABELS)
    relative = ["cat/a.PNG", "cat/deeper/c.webp", "cat/z.png", "dog/b.jpg"]
    assert [image.path for image in images] == [root / path for path in relative]
    assert [image.label for image in images] == ["cat", "cat", "cat", "dog"]
    assert [image.image_id for image in images] == [real_image_id(path) for path in relative]
    assert [image.relative for image in images] == relative
    assert read_real_images(root, LABELS) == images
    assert read_real_images(root, LABELS, check="decode") == images


def test_a_folder_label_outside_the_labels_is_refused(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "real", {"cat/a.png": (0, 0, 0), "dgo/b.png": (0, 0, 0)})
    with pytest.raises(RealImageError) as caught:
        read_real_images(root, LABELS)
    message = str(caught.value)
    assert str(root / "dgo" / "b.png") in message
    assert "'dgo'" in message and "cat, dog" in message and "did you mean 'dog'" in message


@pytest.mark.parametrize(
    ("files", "bad", "pattern"),
    [
        ({"a.png": b"x"}, "a.png", "in the root"),
        ({"cat/readme.txt": b"x"}, "cat/readme.txt", "not an image file name"),
        ({"cat/empty.jpg": b""}, "cat/empty.jpg", "zero-byte"),
        ({"cat/text.jpg": b"not a jpeg"}, "cat/text.jpg", "not an image"),
    ],
)
def test_a_bad_file_in_a_folder_is_refused_by_name(
    tmp_path: Path, files: dict[str, bytes], bad: str, pattern: str
) -> None:
    root = image_folder(tmp_path / "real", {"dog/fine.png": (0, 0, 0)})
    for relative, data in files.items():
        (root / relative).parent.mkdir(exist_ok=True)
        (root / relative).write_bytes(data)
    with pytest.raises(RealImageError, match=pattern) as caught:
        read_real_images(root, LABELS)
    assert str(root / bad) in str(caught.value)
    if pattern in ("zero-byte", "not an image"):  # found by reading the file, not the listing
        assert len(read_real_images(root, LABELS, check="none")) == 2


def test_a_symlink_loop_in_a_folder_is_refused(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "real", {"cat/fine.png": (0, 0, 0)})
    os.symlink(root / "cat" / "loop.png", root / "cat" / "loop.png")
    with pytest.raises(RealImageError, match="symbolic link loop") as caught:
        read_real_images(root, LABELS)
    assert str(root / "cat" / "loop.png") in str(caught.value)


def test_an_empty_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real" / "cat").mkdir(parents=True)
    with pytest.raises(RealImageError, match="no images"):
        read_real_images(tmp_path / "real", LABELS)
    with pytest.raises(RealImageError, match="no such file; a real set is a folder"):
        read_real_images(tmp_path / "nowhere", LABELS)


def test_a_folder_of_a_hundred_images_is_read_and_checked(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(100):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        save(tmp_path / LABELS[i % 2] / f"{i:03d}.jpg", Image.fromarray(pixels))
    images = read_real_images(tmp_path, LABELS)
    assert len(images) == len({image.image_id for image in images}) == 100
    assert read_real_images(tmp_path, LABELS, check="decode") == images


# ---- a sheet


def write_sheet(path: Path, rows: list[list[str]], delimiter: str = "\t") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "delimiter"), [("real.tsv", "\t"), ("real.csv", ",")])
def test_a_sheet_gives_its_images_in_row_order(tmp_path: Path, name: str, delimiter: str) -> None:
    image_folder(tmp_path / "data", {"cat/a.png": (0, 0, 0), "b.jpg": (9, 9, 9)})
    rows = [["label", "path", "note"], ["", "b.jpg", "x"], [], ["cat", "cat/./a.png", "y"]]
    sheet = write_sheet(tmp_path / "data" / name, rows, delimiter)
    images = read_real_images(sheet, LABELS)
    assert images == [
        RealImage(real_image_id("b.jpg"), tmp_path / "data" / "b.jpg", None, "b.jpg"),
        RealImage(
            real_image_id("cat/a.png"), tmp_path / "data" / "cat" / "a.png", "cat", "cat/a.png"
        ),
    ]


@pytest.mark.parametrize(
    ("rows", "pattern", "row", "column"),
    [
        ([["path"], ["a.png"]], "missing column.*label", 1, None),
        ([["path", "label"]], "no images", None, None),
        ([["path", "label"], ["a.png", "cat"], ["./a.png", "dog"]], "given twice", 3, "path"),
        ([["path", "label"], ["a.png", "cta"]], "'cta'.*cat, dog.*did you mean 'cat'", 2, "label"),
        ([["path", "label"], ["../a.png", "cat"]], "outside the sheet's folder", 2, "path"),
        ([["path", "label"], ["/tmp/a.png", "cat"]], "outside the sheet's folder", 2, "path"),
        ([["path", "label"], ["", "cat"]], "the path is empty", 2, "path"),
        ([["path", "label"], ["a.png", "cat"], ["empty.png", ""]], "zero-byte", 3, "path"),
        ([["path", "label"], ["gone.png", "cat"]], "no such file", 2, "path"),
        ([["path", "label"], ["a.png", "cat", "extra"]], "3 fields", 2, None),
    ],
)
def test_a_bad_sheet_row_is_refused_naming_the_sheet_row_and_column(
    tmp_path: Path, rows: list[list[str]], pattern: str, row: int | None, column: str | None
) -> None:
    image_folder(tmp_path / "data", {"a.png": (0, 0, 0)})
    (tmp_path / "data" / "empty.png").touch()
    sheet = write_sheet(tmp_path / "data" / "real.tsv", rows)
    with pytest.raises(RealImageError, match=pattern) as caught:
        read_real_images(sheet, LABELS)
    error = caught.value
    assert (error.sheet, error.row, error.column) == (str(sheet), row, column)
    assert str(error).startswith(f"real-image sheet {sheet}")
    if row is not None:
        assert f"row {row}" in str(error)
    if pattern in ("zero-byte", "no such file"):
        assert str(error.path) in str(error) and error.path.endswith(".png")


def test_an_unknown_check_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="check must be one of"):
        read_real_images(tmp_path, LABELS, check="full")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_truncated_png_is_refused(tmp_path: Path, dtype: type) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (128, 128, 3)).astype(dtype) * 255
    cv2.imwrite(str(tmp_path / "whole.png"), noise)
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.png", "truncated")
    with pytest.raises(RealImageError, match="truncated"):
        check_real_image(tmp_path / "cut.png", decode=True)


def test_a_picture_of_too_many_pixels_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(tmp_path / "big.png", Image.new("RGB", (64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refused above twice this
    refused(path, "too many pixels")
