"""Diversity results of many shards: read, merged into one document, the least diverse
first.  Standard library only: what the summary step needs of ``sdcnn.evaluate.diversity``
(whose measure makes the documents, ``sdcnn-diversity/1``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sdcnn.core.errors import StepError

SCHEMA = "sdcnn-diversity/1"


def read_documents(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """The diversity documents (JSON files) at ``paths``, one at a time."""
    for path in paths:
        yield json.loads(Path(path).read_text(encoding="utf-8"))


def merge_documents(
    documents: Iterable[Mapping[str, Any]], prompt_order: Sequence[str] | None = None
) -> dict[str, Any]:
    """Shards' documents as one, in ``prompt_order`` (every prompt must be there) or as
    found; they must share their settings and name each prompt once."""
    settings = None
    by_id: dict[str, Mapping[str, Any]] = {}
    for document in documents:
        if document.get("schema") != SCHEMA:
            raise StepError(f"not a {SCHEMA} document: schema {document.get('schema')!r}")
        if settings is not None and document["settings"] != settings:
            raise StepError(f"diversity documents of other settings: {settings}, {document}")
        settings = document["settings"]
        for result in document["prompts"]:
            if result["prompt_id"] in by_id:
                raise StepError(f"prompt {result['prompt_id']} in two diversity documents")
            by_id[result["prompt_id"]] = result
    order = list(by_id) if prompt_order is None else list(prompt_order)
    missing = [prompt_id for prompt_id in order if prompt_id not in by_id]
    if missing:
        raise StepError(f"no diversity for the prompt(s) {', '.join(missing[:10])}")
    return {
        "schema": SCHEMA,
        "settings": settings,
        "prompts": [dict(by_id[prompt_id]) for prompt_id in order],
    }


def least_diverse(results: Iterable[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    """The ``count`` least diverse prompts: flagged first, then the larger share of images
    with a near duplicate, then the smaller mean distance (prompts of < 2 images last)."""

    def key(result: Mapping[str, Any]) -> tuple[bool, bool, float, float]:
        n = result["n_images"]
        share = result["n_with_near_duplicate"] / n if n else 0.0
        distance = result["mean_distance"]
        return (not result["flag"], distance is None, -share, distance or 0.0)

    return sorted(results, key=key)[:count]
