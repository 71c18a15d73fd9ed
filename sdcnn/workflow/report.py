"""What the Snakemake report needs from the package: its Jinja filters and short params.

Snakemake (9.27, ``snakemake/report/__init__.py``) renders the captions (report/*.rst)
with a ``jinja2.Environment`` it creates inside ``auto_report``, with no way to add
filters, and that Environment copies ``jinja2.defaults.DEFAULT_FILTERS`` when it is
created.  ``register_jinja_filters``, called by the Snakefile while Snakemake parses it,
adds ``sdcnn.reporting.rst.JINJA_FILTERS`` there, before the report is built.
"""

from __future__ import annotations

from sdcnn.reporting.rst import JINJA_FILTERS


def register_jinja_filters() -> None:
    """Make ``rst`` and ``rst_literal`` filters of every Jinja environment created from
    now on in this process, the report's among them (see the module docstring)."""
    from jinja2.defaults import DEFAULT_FILTERS

    DEFAULT_FILTERS.update(JINJA_FILTERS)


class ReportParam(list):  # type: ignore[type-arg]
    """A list param that Snakemake's report shows as one short line.

    Snakemake (9.27, ``snakemake/report/__init__.py``, ``FileRecord``) writes every param
    of the job behind a report item into that item, with ``str()``: a figures job's prompt
    list (a shard's thousands of prompts) would be copied into each of its charts and
    contact sheets (the report's size at scale: benchmarks/RESULTS.md §10).  ``str()`` of
    this list says only how long it is; its ``repr()``, which Snakemake's re-run check
    compares (``persistence._serialize_param_builtin``), is the full list's, so a change of
    any element still re-runs the job; and it pickles as a plain list, so a job's script
    reads a list without importing this module.
    """

    def __str__(self) -> str:
        return f"[{len(self)} items]"

    def __format__(self, spec: str) -> str:  # f"{param}", as Snakemake writes it
        return format(str(self), spec)

    def __reduce__(self) -> tuple[type, tuple[list]]:  # type: ignore[type-arg]
        return (list, (list(self),))


def report_param(function):  # noqa: ANN001, ANN201 (a params: function of wildcards)
    """``function`` (a params: function returning a list) made to return a ReportParam."""

    def wrapped(wildcards):  # noqa: ANN001, ANN202
        return ReportParam(function(wildcards))

    return wrapped
