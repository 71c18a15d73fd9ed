"""The committed shapes pipeline, and torch's thread count kept, for the demo's tests
(tests/unit/demo/test_check.py, tests/unit/demo/test_training.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sdcnn.demo import training as demo_training

COMMITTED = demo_training.DEFAULT_OUTPUT


@contextlib.contextmanager
def kept_torch_threads() -> Iterator[None]:
    """Loading and training set torch's thread count: put it back for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
