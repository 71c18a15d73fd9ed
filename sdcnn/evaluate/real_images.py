"""Real images: a set read from a folder or a sheet, checked, sharded and decoded.

A *real set* is what the classifier is measured on besides the synthetic hold-out.  It is
either

- a **folder** in ImageFolder layout, ``<root>/<label>/<file>``: the label is the name of
  the top folder; files deeper down (``<root>/<label>/<any>/<file>``) belong to that label
  too (as in torchvision).  A file directly in the root is an error (it has no label).
  Names that start with ``.`` (``.DS_Store``, ``.git``) are skipped; any other file must
  have an image extension (:data:`EXTENSIONS`, any case).  A label folder may be a symbolic
  link; symbolic links to folders below it are not followed (and refused as files).
  Order: by relative path (code-point order), the same on every machine.
- a **sheet**, ``.tsv`` or ``.csv`` (UTF-8) with a header row holding the columns ``path``
  and ``label`` (other columns are ignored).  ``path`` is relative to the sheet's folder
  and must stay inside it (no absolute path, no ``..`` out of it); an empty ``label`` means
  predict only (spaces around a label are dropped).  Order: the sheet's row order.

:func:`read_real_images` gives a list of :class:`RealImage`; every problem is a
:class:`RealImageError` naming the file (and the sheet's row and column).  What is read to
check a file depends on ``check``: ``"none"`` lists only (labels, duplicates, ids);
``"header"`` (the default) adds a ``stat`` and PIL's ``Image.open`` (the format's header,
a few KiB, no pixel data: about 0.05 ms a file, so 100,000 images in seconds); ``"decode"``
decodes every file too (JPEG at 1/8 scale, which still reads all of its data: about
0.6 ms for 256 x 256, more for photos), and only that finds pixel data cut short or
corrupt (a truncated JPEG, PNG or WebP).  :func:`load_real_image` refuses such a file
anyway, naming it.

:func:`load_real_image` decodes one file to 8-bit BGR, the array OpenCV's ``imread`` gives
the synthetic path; :func:`preprocess_real_image` makes its tensor with the preprocess
step's own functions (:mod:`sdcnn.preprocess.image_to_tensor`).  The rule for each odd
file is in :func:`load_real_image`.
"""

from __future__ import annotations

import csv
import difflib
import errno
import hashlib
import io
import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from sdcnn.core.errors import StepError
from sdcnn.core.shards import assign_shards
from sdcnn.preprocess.image_to_tensor import to_tensor

# file-name extensions of a real image (lower case), and the PIL formats they may hold
EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".tif", ".tiff", ".gif")
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
SHEET_DELIMITERS = {".tsv": "\t", ".csv": ","}
PATH_COLUMN, LABEL_COLUMN = "path", "label"
CHECKS = ("none", "header", "decode")
ID_SLUG_LENGTH, ID_HASH_LENGTH = 50, 12  # an id has at most 50 + 1 + 12 = 63 characters
ORIENTATION_TAG = 0x0112  # EXIF Orientation
BACKGROUND = 255  # transparent pixels are composited on white, the demo's background


class RealImageError(StepError):
    """A problem with a real image or the real set; the message names the file (and the
    sheet, row and column where the image comes from a sheet), as ``path``, ``sheet``,
    ``row`` and ``column`` say too."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        sheet: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.problem, self.row, self.column = problem, row, column
        self.path = None if path is None else str(path)
        self.sheet = None if sheet is None else str(sheet)
        super().__init__(f"{self.where()}: {problem}")

    def where(self) -> str:
        """``real-image sheet S, row 3, column path, image P`` (the parts that are known)."""
        parts = []
        if self.sheet is not None:
            parts.append(f"real-image sheet {self.sheet}")
            parts += [f"row {self.row}"] if self.row is not None else []
            parts += [f"column {self.column}"] if self.column is not None else []
        if self.path is not None:
            parts.append(f"image {self.path}" if parts else f"real image {self.path}")
        return ", ".join(parts) or "real images"


@dataclass(frozen=True)
class RealImage:
    """One image of a real set: its id (a file-name stem), its file, its label (None:
    predict only), and its path relative to the folder or sheet (POSIX; what its id is
    made of, and what the outputs record)."""

    image_id: str
    path: Path
    label: str | None
    relative: str = ""


# ---- ids and shards


def real_image_id(relative_path: str) -> str:
    """The id of the image at ``relative_path`` (POSIX, relative to the folder or sheet).

    ``cat/001.png`` gives ``cat_001_png-<12 hex digits>``: the path's letters and digits
    (other runs of characters become ``_``, at most 50 characters), ``-`` and the start
    of the SHA-256 of the path (NFC).  It depends on the path alone, so adding or removing
    an image renames no other; it matches the prompt-id rule of config/schema.yaml
    (``^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$``), so it is a safe file name on every system.
    """
    normal = unicodedata.normalize("NFC", relative_path)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", normal).strip("_")[:ID_SLUG_LENGTH].rstrip("_")
    digest = hashlib.sha256(normal.encode("utf-8")).hexdigest()[:ID_HASH_LENGTH]
    return f"{slug or 'image'}-{digest}"


def shard_real_images(
    images: Sequence[RealImage], shards: int | None
) -> dict[str, list[RealImage]]:
    """Shard name -> its images (in the given order), by the prompts' hash sharding
    (:func:`sdcnn.core.shards.assign_shards` on the image ids): an image's shard depends on
    its id alone, so adding or removing an image changes its own shard only.  ``None``
    makes each image a shard of its own (named by its id), as for prompts."""
    by_id = {image.image_id: image for image in images}
    return {
        name: [by_id[image_id] for image_id in ids]
        for name, ids in assign_shards(by_id, shards).items()
    }


# ---- one file


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a readable, non-empty regular file (a ``stat`` only), or None."""
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        if isinstance(error, FileNotFoundError) and os.path.islink(path):
            return f"a dangling symbolic link (to {os.readlink(path)})"
        if isinstance(error, FileNotFoundError):
            return "no such file"
        return f"cannot be read ({error.strerror or error})"
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a special file"
        return f"not a regular file ({kind})"
    if info.st_size == 0:
        return "a zero-byte file"
    return None


def _refuse(path: str | Path, problem: str) -> RealImageError:
    return RealImageError(problem, path=path)


def _open(path: str | Path) -> Image.Image:
    """``Image.open`` of a checked file: the header only, one of :data:`FORMATS`."""
    problem = file_problem(path)
    if problem is not None:
        raise _refuse(path, problem)
    try:
        return Image.open(path, formats=FORMATS)
    except Image.DecompressionBombError as error:
        raise _refuse(path, f"too many pixels ({error})") from None
    except UnidentifiedImageError:
        raise _refuse(path, "not an image PIL can read as " + ", ".join(FORMATS)) from None
    except Exception as error:  # a decoder's error, whatever its class: the file is bad
        raise _refuse(path, f"not a readable image: corrupt or truncated ({error})") from None


def check_real_image(path: str | Path, *, decode: bool = False) -> None:
    """Refuse (a :class:`RealImageError` naming the file) a file that is missing, not a
    regular file, zero bytes, a symbolic-link loop or dangling link, not an image, an
    image of a mode :func:`load_real_image` refuses, or (``decode``) whose pixel data
    does not decode.  Without ``decode`` only the header is read."""
    with _open(path) as image:
        _check_mode(path, image)
        if decode:
            _decode(path, image, draft=image.format == "JPEG")


def _check_mode(path: str | Path, image: Image.Image) -> None:
    """Refuse 32-bit integer or float pixels (a PNG's ``I`` is 16-bit gray: taken)."""
    if image.mode == "F" or (image.mode == "I" and image.format != "PNG"):
        raise _refuse(
            path,
            f"{image.mode!r} pixels (32-bit integer or floating point) have no defined 8-bit "
            "scale; save it with 8 or 16 bits per channel",
        )


def _decode(path: str | Path, image: Image.Image, draft: bool = False) -> None:
    """Decode the pixel data (a JPEG's at 1/8 scale with ``draft``: all of the data is
    still read); refuse truncated or corrupt data."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise _refuse(path, "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncation unseen")
    try:
        if draft:
            image.draft(image.mode, (1, 1))
        image.load()
    except Exception as error:  # truncated data, a bad CRC, a broken stream, ...
        raise _refuse(path, f"corrupt or truncated image data ({error})") from None


def load_real_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as 8-bit BGR, ``(H, W, 3)``: what ``cv2.imread`` gives the
    synthetic path, so that the same pixels give the same tensor.

    Decoded with PIL (JPEG and WebP as OpenCV decodes them, bit for bit, with the
    libjpeg-turbo and libwebp of the wheels); colour profiles are ignored, as OpenCV does.
    The rule for each kind of file:

    - 8-bit RGB: as it is.  Grayscale (``L``, or 1-bit): the value in all three channels.
    - 16-bit PNG (any channels; decoded with OpenCV, as PIL truncates 16-bit colour) and
      16-bit TIFF gray: ``round(v * 255 / 65535)`` (``(v + 128) // 257``, no ties).
    - palette (``P``): its colours; with a transparent index, as alpha (below).
    - alpha (RGBA, LA, PA, palette transparency; alpha scaled first if 16-bit): composited
      on white, ``round((c * a + 255 * (255 - a)) / 255)`` per channel, no ties.
    - CMYK (JPEG, TIFF), YCbCr, LAB, HSV: PIL's ``convert("RGB")`` (no colour management).
    - EXIF orientation (any format): applied, as ``ImageOps.exif_transpose`` would, so the
      result is upright; orientation 1 or none leaves it as it is.
    - animated GIF or WebP, multi-page TIFF: the first frame (page) only.
    - 32-bit integer or float pixels (``I``, ``F``): refused (no defined 8-bit scale).
    - zero-byte, missing, a folder, a symbolic-link loop or dangling link, not an image,
      corrupt or truncated data: refused, a :class:`RealImageError` naming the file.
    """
    with _open(path) as image:
        _check_mode(path, image)
        _decode(path, image)
        orientation = _orientation(path, image)
        if image.format == "PNG" and _png_bit_depth(path) == 16:
            pixels = _png16(path)
        else:
            pixels = _to_rgb_or_rgba(path, image)
    rgb = _on_white(pixels) if pixels.shape[2] == 4 else pixels
    return np.ascontiguousarray(orient(rgb, orientation)[:, :, ::-1])


def _orientation(path: str | Path, image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception as error:  # an EXIF block PIL cannot parse
        raise _refuse(path, f"unreadable EXIF data ({error})") from None
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_bit_depth(path: str | Path) -> int:
    """The bit depth in a PNG's IHDR chunk (byte 24 of the file)."""
    with open(path, "rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 else 0


def _png16(path: str | Path) -> np.ndarray:
    """A 16-bit PNG as 8-bit RGB or RGBA (OpenCV's decoder keeps all 16 bits)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise _refuse(path, "corrupt or truncated image data (OpenCV cannot decode it)")
    scaled = _scale_16_to_8(raw) if raw.dtype == np.uint16 else raw
    if scaled.ndim == 2:
        return np.repeat(scaled[:, :, np.newaxis], 3, axis=2)
    code = cv2.COLOR_BGRA2RGBA if scaled.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(scaled, code)


def _scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """``round(v * 255 / 65535)`` = ``round(v / 257)``; 257 is odd, so no ties."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _to_rgb_or_rgba(path: str | Path, image: Image.Image) -> np.ndarray:
    """A decoded PIL image as 8-bit RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``."""
    try:
        return _converted(image)
    except (ValueError, OSError) as error:  # a mode PIL cannot convert to RGB
        raise _refuse(path, f"cannot be converted to RGB ({error})") from None


def _converted(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        gray = _scale_16_to_8(np.asarray(image).astype(np.uint16))
        return np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    has_alpha = "A" in mode or "a" in mode or (mode == "P" and "transparency" in image.info)
    if mode == "L" and "transparency" in image.info:
        has_alpha = True
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA -> RGB on white: ``round((c * a + 255 * (255 - a)) / 255)``, exact in integers."""
    colour = rgba[:, :, :3].astype(np.uint32)
    alpha = rgba[:, :, 3:].astype(np.uint32)
    blended = colour * alpha + BACKGROUND * (255 - alpha)
    return ((blended + 127) // 255).astype(np.uint8)


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (stored as the file has them) turned upright for an EXIF ``orientation``
    (1 to 8), as ``PIL.ImageOps.exif_transpose`` turns an image."""
    turns = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return turns[orientation](pixels)


def preprocess_real_image(
    path: str | Path, size: int, grayscale: bool, interpolation: str
) -> np.ndarray:
    """A real image's tensor, float32 ``(C, size, size)`` in [0, 1]: the preprocess step's
    ``to_tensor`` of :func:`load_real_image`, the same as a synthetic PNG of the same
    pixels gives."""
    return to_tensor(load_real_image(path), size, grayscale, interpolation)


# ---- a set


def read_real_images(
    source: str | Path, labels: Sequence[str], *, check: str = "header"
) -> list[RealImage]:
    """The real set at ``source`` (a folder in ImageFolder layout, or a ``.tsv``/``.csv``
    sheet), checked: every label one of ``labels`` (the classifier's), no path twice, not
    empty, and each file as ``check`` says (``"none"``, ``"header"``, ``"decode"``; see the
    module's docstring).  The first problem is a :class:`RealImageError` naming the file."""
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, not {check!r}")
    source = Path(source)
    if source.suffix.lower() in SHEET_DELIMITERS and not source.is_dir():
        images = _read_sheet(source, labels, check)
    elif source.is_dir():
        images = _read_folder(source, labels, check)
    else:
        raise RealImageError(
            f"{file_problem(source) or 'not a folder'}; a real set is a folder "
            "(<label>/<file>) or a .tsv/.csv sheet of path and label",
            path=source,
        )
    _check_ids(images)
    return images


def _label_problem(label: str, labels: Sequence[str]) -> str:
    guess = difflib.get_close_matches(label, list(labels), n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"the label {label!r} is not one of the classifier's labels ({', '.join(labels)}){hint}"


def _check_ids(images: Sequence[RealImage]) -> None:
    """No two images share an id (two paths would need the same 48-bit hash and slug)."""
    seen: dict[str, Path] = {}
    for image in images:
        if image.image_id in seen:
            raise RealImageError(
                f"has the same id {image.image_id!r} as {seen[image.image_id]}; rename one",
                path=image.path,
            )
        seen[image.image_id] = image.path


# ---- a folder


def _walk(folder: Path, relative: str) -> Iterator[tuple[Path, str]]:
    """Every non-hidden file under ``folder`` (symbolic links to folders not followed), as
    (path, relative POSIX path), in code-point order of the names."""
    try:
        with os.scandir(folder) as entries:
            found = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    except OSError as error:
        raise RealImageError(f"the folder cannot be read ({error.strerror})", path=folder) from None
    for name, is_dir in found:
        if name.startswith("."):
            continue
        if is_dir:
            yield from _walk(folder / name, f"{relative}{name}/")
        else:
            yield folder / name, f"{relative}{name}"


def _read_folder(root: Path, labels: Sequence[str], check: str) -> list[RealImage]:
    with os.scandir(root) as entries:
        top = sorted((entry.name, entry.is_dir()) for entry in entries)
    images = []
    for name, is_dir in top:
        if name.startswith("."):
            continue
        if not is_dir:
            problem = file_problem(root / name)
            raise RealImageError(
                f"{problem + '; ' if problem else ''}a file in the root of the real-image "
                "folder has no label; put it in <root>/<label>/",
                path=root / name,
            )
        for path, relative in _walk(root / name, f"{name}/"):
            _check_extension(path)
            if name not in labels:
                raise RealImageError(_label_problem(name, labels), path=path)
            images.append(RealImage(real_image_id(relative), path, name, relative))
    if not images:
        raise RealImageError("no images; a real-image folder holds <label>/<file>", path=root)
    for image in images:
        _check_file(image.path, check)
    return images


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in EXTENSIONS:
        raise RealImageError(
            f"not an image file name (a real image ends in {', '.join(EXTENSIONS)}); "
            "move it out, or give it a name that starts with '.' to skip it",
            path=path,
        )


def _check_file(path: Path, check: str, sheet: Path | None = None, row: int | None = None) -> None:
    """:func:`check_real_image` as ``check`` says; a sheet's row named in the message."""
    if check == "none":
        return
    try:
        check_real_image(path, decode=check == "decode")
    except RealImageError as error:
        column = PATH_COLUMN if sheet is not None else None
        raise RealImageError(
            error.problem, path=path, sheet=sheet, row=row, column=column
        ) from None


# ---- a sheet


def _read_sheet(sheet: Path, labels: Sequence[str], check: str) -> list[RealImage]:
    rows = _sheet_rows(sheet)
    images: list[RealImage] = []
    first_row: dict[str, int] = {}
    for row, relative, label in rows:
        normal = _sheet_path(sheet, relative, row)
        path = sheet.parent / normal
        if normal in first_row:
            raise RealImageError(
                f"the path is given twice (rows {first_row[normal]} and {row})",
                path=path,
                sheet=sheet,
                row=row,
                column=PATH_COLUMN,
            )
        first_row[normal] = row
        if label is not None and label not in labels:
            raise RealImageError(
                _label_problem(label, labels), path=path, sheet=sheet, row=row, column=LABEL_COLUMN
            )
        images.append(RealImage(real_image_id(normal), path, label, normal))
    if not images:
        raise RealImageError("no images (at least one row after the header)", sheet=sheet)
    for (row, _, _), image in zip(rows, images, strict=True):
        _check_file(image.path, check, sheet, row)
    return images


def _sheet_rows(sheet: Path) -> list[tuple[int, str, str | None]]:
    """The sheet's (row number, path, label or None) of each non-blank row."""
    problem = file_problem(sheet)
    if problem is not None:
        raise RealImageError(problem, sheet=sheet)
    try:
        text = sheet.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RealImageError(f"not UTF-8 ({error.reason})", sheet=sheet) from None
    delimiter = SHEET_DELIMITERS[sheet.suffix.lower()]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in (PATH_COLUMN, LABEL_COLUMN) if name not in header]
        if missing:
            raise RealImageError(
                f"missing column(s) {', '.join(missing)}; a real-image sheet has the "
                f"columns {PATH_COLUMN} and {LABEL_COLUMN} (label may be empty)",
                sheet=sheet,
                row=1,
            )
        at_path, at_label = header.index(PATH_COLUMN), header.index(LABEL_COLUMN)
        rows = []
        for row, fields in enumerate(reader, start=2):
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise RealImageError(
                    f"{len(fields)} fields, but the header has {len(header)}",
                    sheet=sheet,
                    row=row,
                )
            label = fields[at_label].strip()
            rows.append((row, fields[at_path], label or None))
    except csv.Error as error:
        raise RealImageError(f"line {reader.line_num}: {error}", sheet=sheet) from None
    return rows


def _sheet_path(sheet: Path, relative: str, row: int) -> str:
    """A sheet's path cell, normalised (POSIX); refused when empty, absolute or outside
    the sheet's folder (checked on the text: symbolic links inside may point anywhere)."""
    if not relative.strip():
        raise RealImageError("the path is empty", sheet=sheet, row=row, column=PATH_COLUMN)
    normal = posixpath.normpath(relative)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise RealImageError(
            f"{relative!r} is outside the sheet's folder; paths are relative to the sheet "
            "(put the sheet in a folder above its images)",
            sheet=sheet,
            row=row,
            column=PATH_COLUMN,
        )
    return normal
