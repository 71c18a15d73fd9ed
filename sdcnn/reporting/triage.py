"""Which images are most worth a person's look: what the figures draw, and what the
summary page shows, when a run has more images than anyone can look at."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any


def doubt(image: Mapping[str, Any]) -> tuple[bool, float]:
    """How much an image is worth a look, as a sort key (smallest first): a wrong
    prediction before a right or unlabelled one, then the least sure top label."""
    return (image.get("correct") is not False, float(image["top_probability"]))


def most_doubtful(images: Sequence[Mapping[str, Any]], limit: int | None) -> list[int]:
    """The indices of the ``limit`` images most worth a look (``doubt``; ties: the first),
    in ascending order; every index when ``limit`` is None."""
    if limit is None or limit >= len(images):
        return list(range(len(images)))
    chosen = heapq.nsmallest(limit, range(len(images)), key=lambda i: (doubt(images[i]), i))
    return sorted(chosen)
