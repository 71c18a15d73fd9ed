"""A model's safety checker: its verdict on each image, as the outputs record it.

A diffusers pipeline with a safety checker (as the Stable Diffusion 1.x folders have)
returns a black image in place of each image the checker flags.  The generate step
writes the verdict into each PNG (text chunk ``safety_checker``: ``flagged``, ``passed``
or ``unchecked`` when the pipeline has no checker), warns in its log and on the console;
the predict step copies it into the prediction JSON (``safety_flagged``: true, false or
null) and the summary has it per image.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sdcnn.core.png_text import SAFETY_CHECKER, read_png_text
from sdcnn.core.shards import PromptBatch, ShardLayout

VERDICT_TEXT = {True: "flagged", False: "passed", None: "unchecked"}
TEXT_VERDICT = {text: verdict for verdict, text in VERDICT_TEXT.items()}


def verdict_of(png_path: str | Path) -> bool | None:
    """The verdict a generated PNG records (None when it records none)."""
    return TEXT_VERDICT.get(read_png_text(png_path).get(SAFETY_CHECKER))


def with_verdicts(
    batches: list[PromptBatch], image_dir: str | Path, layout: ShardLayout
) -> list[PromptBatch]:
    """``batches`` with the verdicts the shard's PNGs (in ``image_dir``) record."""
    return [
        dataclasses.replace(
            batch,
            safety_flagged=[
                verdict_of(layout.folder(image_dir, batch.prompt_id) / f"{stem}.png")
                for stem in batch.image_ids
            ],
        )
        for batch in batches
    ]
