"""diffusers' progress bars as log lines.

A tqdm bar redraws itself in place with carriage returns, which a log file
shows as one long smeared line.  ``LogLines`` turns every redraw into a log
record of its own (timestamped like the step's other records), and
``log_progress_bar`` is the ``set_progress_bar_config`` that uses it: a plain
ASCII bar, redrawn at most every ``interval`` seconds plus its first and last
state, so a long denoising loop leaves a readable trail in the rule's log.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

log = logging.getLogger("sdcnn.core.progress")

_REDRAW = re.compile(r"[\r\n]+")


class LogLines(io.TextIOBase):
    """A text stream for tqdm: each non-empty redraw becomes one record of ``logger``."""

    def __init__(self, logger: logging.Logger = log) -> None:
        super().__init__()
        self._logger = logger
        self._last = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for piece in _REDRAW.split(text):
            line = piece.strip()
            if line and line != self._last:  # tqdm repaints the final state when it closes
                self._logger.info("%s", line)
                self._last = line
        return len(text)


def log_progress_bar(desc: str, *, interval: float = 10.0) -> dict[str, Any]:
    """Keyword arguments for ``pipeline.set_progress_bar_config``: the bar goes to the log."""
    return {
        "desc": desc,
        "file": LogLines(),
        "ascii": True,
        "ncols": 80,
        "dynamic_ncols": False,
        "mininterval": interval,
        "leave": True,
        "disable": False,
    }
