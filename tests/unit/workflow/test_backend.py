"""The backend decision passed to jobs (sdcnn/workflow/backend.py)."""

from __future__ import annotations

import pytest

from sdcnn.core.errors import StepError
from sdcnn.workflow.backend import BACKEND_DECISION_VARIABLE, backend_of_run


def test_the_backend_is_decided_by_the_main_process_and_kept_by_its_jobs() -> None:
    environ: dict[str, str] = {}
    found = backend_of_run(
        "auto", main_process=True, environ=environ, julia_found=True, julia_project=True
    )
    assert found == "flux" and environ[BACKEND_DECISION_VARIABLE] == "auto=flux"
    # a job on a host without julia keeps the main process's decision
    job = backend_of_run(
        "auto", main_process=False, environ=environ, julia_found=False, julia_project=True
    )
    assert job == "flux"
    # a decision for another config is not taken
    other = {BACKEND_DECISION_VARIABLE: "flux=flux"}
    assert (
        backend_of_run(
            "auto", main_process=False, environ=other, julia_found=False, julia_project=True
        )
        == "torch"
    )
    with pytest.raises(StepError):
        backend_of_run("flux", main_process=True, environ={}, julia_found=False, julia_project=True)
