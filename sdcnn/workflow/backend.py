"""The run's classifier backend, decided once by Snakemake's main process for all its jobs.

``rules/common.smk`` calls ``backend_of_run``; the main process resolves ``auto``
(``sdcnn.classify.prediction.resolve_backend``) and passes its decision to the jobs in an
environment variable (a Snakemake ``envvars:``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from sdcnn.classify.prediction import resolve_backend

# The run's one decision: its main process resolves the backend (``auto`` by whether it
# can run ``julia``) and passes "<configured>=<resolved>" to its jobs in this variable
# (a Snakemake ``envvars:``), which parse the workflow again, maybe on a host where
# ``julia`` is not on PATH: they take the decision instead of making their own.
BACKEND_DECISION_VARIABLE = "SDCNN_BACKEND_DECISION"


def backend_decision(requested: str, resolved: str) -> str:
    return f"{requested}={resolved}"


def decided_backend(requested: str, environ: Mapping[str, str]) -> str | None:
    """The main process's decision for ``requested``, where a job finds one, else None."""
    configured, _, resolved = environ.get(BACKEND_DECISION_VARIABLE, "").partition("=")
    if configured != requested or resolved not in ("torch", "flux"):
        return None
    return resolved


def backend_of_run(
    requested: str,
    *,
    main_process: bool,
    environ: MutableMapping[str, str],
    julia_found: bool,
    julia_project: bool,
) -> str:
    """``classifier.backend`` with ``auto`` resolved once per run: the main process decides
    and records its decision in ``environ`` (which Snakemake hands to every job, an
    ``envvars:``); a job takes the decision it finds there for the same ``requested``."""
    resolved = None if main_process else decided_backend(requested, environ)
    if resolved is None:
        resolved = resolve_backend(requested, julia_found=julia_found, julia_project=julia_project)
    environ[BACKEND_DECISION_VARIABLE] = backend_decision(requested, resolved)
    return resolved
