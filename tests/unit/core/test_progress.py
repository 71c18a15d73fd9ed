"""Progress lines (sdcnn/core/progress.py): redraws become log lines."""

from __future__ import annotations

import logging

import pytest

from sdcnn.core.progress import LogLines, log_progress_bar


def test_progress_redraws_become_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    from tqdm import tqdm

    caplog.set_level(logging.INFO, logger="sdcnn.core.progress")
    config = log_progress_bar("denoising", interval=0)
    for _ in tqdm(range(3), **config):
        pass
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("denoising:   0%|") and lines[0].endswith("0/3 [00:00<?, ?it/s]")
    assert lines[-1].startswith("denoising: 100%|##########") and "| 3/3 [" in lines[-1]
    assert len(lines) == len(set(lines)) >= 2
    assert not any("\r" in line or "\n" in line for line in lines)


def test_log_lines_split_carriage_returns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sdcnn.core.progress")
    stream = LogLines()
    assert stream.write("\rstep 1\rstep 2\n") == len("\rstep 1\rstep 2\n")
    stream.write("\rstep 2")
    assert [record.getMessage() for record in caplog.records] == ["step 1", "step 2"]
