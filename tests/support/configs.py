"""The configs the tests run the workflow on, and the prompt sheets they write.

``SMALL_CONFIG`` is the config of the shared ``small_run`` (tests/conftest.py);
``config_with`` changes one key of it.  ``SHARDED_CONFIG`` and ``sheet_rows`` are the
shared ``sharded_run``'s: a 40-prompt sheet in 4 shards.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.real_sets import SMALL_REAL

# Small enough to run in seconds, large enough to exercise everything:
# two prompts (one with a negative prompt), several images, shrinking resize.
SMALL_CONFIG: dict[str, Any] = {
    "prompts": {
        "city": {"text": "A futuristic city at sunset", "n_images": 3, "label": "ship"},
        "harbor": {
            "text": "A quiet fishing harbor at dawn, watercolor",
            "negative_prompt": "blurry",
            "n_images": 2,
            "label": "dog",
        },
    },
    "generation": {"steps": 2, "height": 64, "width": 64, "base_seed": 7},
    "preprocess": {"size": 32},
    # trained on the two prompts' images, as the default config is (in 2 quick epochs)
    "classifier": {"labels": ["cat", "dog", "ship"], "weights": "trained", "weights_seed": 3},
    "training": {"epochs": 2, "batch_size": 2, "holdout_every": 3},
    # four real pictures in two real shards (tests/support/real_sets.py)
    "evaluation": {"real": SMALL_REAL, "shards": 2},
}


def config_with(path: Sequence[str], value: Any) -> dict[str, Any]:
    """SMALL_CONFIG with one key set, e.g. ``config_with(("generation", "height"), 100)``."""
    config = copy.deepcopy(SMALL_CONFIG)
    target = config
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return config


# A sheet of 40 prompts in 4 shards, with the small config's settings; its first two rows
# are the small config's prompts, so their outputs must equal the small run's byte for byte.
SHEET_PROMPTS = 40
SHARDED_CONFIG: dict[str, Any] = {
    **{key: value for key, value in SMALL_CONFIG.items() if key != "prompts"},
    "prompts": "prompts.tsv",
    "shards": 4,
    # every picture drawn, to compare them with the unsharded run's (the caps: unit tests)
    "figures": {"charts": None, "contact_sheets": None},
}


def sheet_rows() -> list[dict[str, Any]]:
    rows = [
        {"prompt_id": prompt_id, "negative_prompt": "", **prompt}
        for prompt_id, prompt in SMALL_CONFIG["prompts"].items()
    ]
    rows += [
        {
            "prompt_id": f"p{i:02d}",
            "text": f"a picture number {i}",
            "negative_prompt": "",
            "n_images": 1,
            "label": None,
        }
        for i in range(SHEET_PROMPTS - len(rows))
    ]
    return rows


def write_sheet(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns = ["prompt_id", "text", "negative_prompt", "n_images", "label"]
    lines = ["\t".join(columns)]
    lines += ["\t".join("" if row[c] is None else str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
