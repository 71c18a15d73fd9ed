"""A network address that refuses connections, for the tests of what a failed download says."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def closed_port_url() -> Iterator[str]:
    """An http URL on this machine that refuses connections at once (bound, not listening)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"
