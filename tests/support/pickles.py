"""A pickle with a side effect, for the tests that bad files are refused without unpickling
(tests/unit/classify/test_weights.py, tests/unit/preprocess/test_tensors.py)."""

from __future__ import annotations

from pathlib import Path


class Touch:
    """Unpickling this creates ``path``: the side effect a malicious file would have."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (Path(self.path),))
