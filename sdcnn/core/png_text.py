"""The text chunks of the generated PNGs: the key of each thing an image records.

The generate step writes them (``sdcnn.generate.shard_generator.png_text``, with each
``GenerationSettings`` field under its own name too); predict, reporting and export read
them with ``read_png_text``, e.g. ``int(read_png_text(path)[SEED])``.
"""

from __future__ import annotations

import io
from pathlib import Path

PROMPT_ID = "prompt_id"
IMAGE_INDEX = "image_index"
PROMPT = "prompt"
NEGATIVE_PROMPT = "negative_prompt"
SEED = "seed"
MODEL = "model"  # the config's model.source
MADE_ON = "made_on"  # the kernel environment it was made with (JSON)
SAFETY_CHECKER = "safety_checker"  # the model's safety checker's verdict


def read_png_text(source: str | Path | bytes) -> dict[str, str]:
    """The text chunks of a PNG file or PNG bytes (read from its header chunks; the pixels
    are not decoded).  Raises ``OSError`` for what is not a readable image."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return dict(getattr(image, "text", {}))
