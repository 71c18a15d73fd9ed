"""The package's errors, and the logger whose records reach the person at the terminal."""

from __future__ import annotations


class StepError(Exception):
    """An error whose message is meant for the user as it is (no traceback needed)."""


# what a step logs to this logger reaches the console as well as the job's log
CONSOLE_LOGGER = "sdcnn.console"
