"""A locale whose text encoding is ASCII, for the tests that a file is read as UTF-8 whatever
the locale says (a config with "café" on a node whose locale is not UTF-8)."""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator


@contextlib.contextmanager
def ascii_locale() -> Iterator[None]:
    """LC_CTYPE set to C for the block: a text read without an explicit encoding is then
    decoded as ASCII (where Python runs in UTF-8 mode it stays UTF-8, and a test using this
    checks only what it would check anyway)."""
    old = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, old)
