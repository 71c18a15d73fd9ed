"""What a job asked Snakemake for: its GPUs and other resources, read without torch."""

from __future__ import annotations

from typing import Any, Protocol


class JobResources(Protocol):
    """What the step needs of ``snakemake.resources`` (a named list) or a dict."""

    def get(self, key: str, default: object = ...) -> object: ...


def gpus_requested(resources: JobResources) -> int:
    """The GPUs a job asked for: its ``gpu`` resource (config: ``generation.gpu``,
    ``classifier.gpu``; a profile's ``set-resources`` may raise it), 0 when unset.

    Read from the job's resources, not passed as a param: where a job runs is not
    what decides its outputs, and a param that reads resources makes Snakemake
    evaluate every job's resources while it builds the DAG (benchmarks/RESULTS.md §5).
    """
    return int(resources.get("gpu", 0) or 0)


def resource_number(resources: Any, name: str, default: int) -> int:
    """A resource's number at parse time, where a value is a Snakemake ``Resource`` (its
    ``.value``) or a plain number; ``default`` when ``resources`` does not set it."""
    value = resources[name] if name in resources else default  # noqa: SIM401 (no .get)
    return int(getattr(value, "value", value) or 0)
