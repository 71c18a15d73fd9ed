"""The step frame (sdcnn/workflow/step.py): the thread count that runs is the configured one
(a job that got fewer cores says so), and the GPU slot it claims."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdcnn.core import gpu_slots
from sdcnn.core.errors import StepError
from sdcnn.core.gpu_slots import LOCK_DIR_VARIABLE
from sdcnn.workflow.step import warn_if_threads_differ
from tests.support.workspace import REPO


class Lines:
    """A console that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


def test_fewer_reserved_cores_are_a_warning_naming_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    console = Lines()
    with caplog.at_level(logging.WARNING, logger="sdcnn"):
        warn_if_threads_differ("generation.threads", 8, 2, console, environ={})
    (record,) = caplog.records
    assert console.lines == [f"WARNING {record.getMessage()}"], "not said on the console"
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "generation.threads is 8 but Snakemake reserved 2 core(s)" in message
    assert "running 8 threads anyway" in message


def test_equal_counts_say_nothing(caplog: pytest.LogCaptureFixture) -> None:
    console = Lines()
    with caplog.at_level(logging.DEBUG, logger="sdcnn"):
        warn_if_threads_differ("classifier.threads", 2, 2, console, environ={})
        warn_if_threads_differ("classifier.threads", 1, 4, console, environ={"SLURM_JOB_ID": "7"})
    assert caplog.records == [] and console.lines == []


def test_a_cluster_job_with_fewer_cpus_than_threads_stops(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(StepError) as error:
        warn_if_threads_differ("training.threads", 4, 1, Lines(), environ={"SLURM_JOB_ID": "7"})
    assert str(error.value).startswith(
        "training.threads is 4 but this cluster job was given 1 CPU(s): 4 threads would "
        "oversubscribe the node"
    )


@pytest.mark.parametrize(
    "script, key",
    [
        ("generate.py", "generation.threads"),
        ("predict.py", "classifier.threads"),
        ("train_classifier.py", "training.threads"),
    ],
)
def test_the_steps_that_pin_threads_compare_them_with_snakemakes(script: str, key: str) -> None:
    source = (REPO / "scripts" / script).read_text(encoding="utf-8")
    assert f'warn_if_threads_differ("{key}",' in source and "smk.threads, step)" in source


def test_the_step_frame_claims_and_logs_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snakemake_step(gpus=...) claims before its body runs, and says so in the job's log."""
    from sdcnn.workflow.step import snakemake_step

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv(LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    log = tmp_path / "job.log"
    smk = SimpleNamespace(rule="generate", wildcards={"shard": "a"}, log=[str(log)])
    stderr = sys.stderr
    try:
        with snakemake_step(smk, gpus=1):
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        sys.stderr = stderr
        for slots in list(gpu_slots._held):
            slots.release()
    assert "GPU slot: CUDA_VISIBLE_DEVICES=0 (of 0,1)" in log.read_text()
