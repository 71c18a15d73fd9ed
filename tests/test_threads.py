"""The thread count that runs is the configured one; a job that got fewer cores says so."""

from __future__ import annotations

import logging

import pytest

from conftest import REPO
from sdcnn.step import warn_if_threads_differ


def test_fewer_reserved_cores_are_a_warning_naming_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sdcnn"):
        warn_if_threads_differ("generation.threads", 8, 2)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "generation.threads is 8 but Snakemake reserved 2 core(s)" in message
    assert "running 8 threads anyway" in message


def test_equal_counts_say_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="sdcnn"):
        warn_if_threads_differ("classifier.threads", 2, 2)
    assert caplog.records == []


@pytest.mark.parametrize(
    "script, key", [("generate.py", "generation.threads"), ("predict.py", "classifier.threads")]
)
def test_the_steps_that_pin_threads_compare_them_with_snakemakes(script: str, key: str) -> None:
    source = (REPO / "scripts" / script).read_text(encoding="utf-8")
    assert f'warn_if_threads_differ("{key}",' in source and "smk.threads" in source
