"""The report's Jinja filters and params (sdcnn/workflow/report.py)."""

from __future__ import annotations

import jinja2

from sdcnn.reporting.rst import rst_literal, rst_text
from sdcnn.workflow.report import register_jinja_filters


def test_filters_reach_every_jinja_environment() -> None:
    register_jinja_filters()
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake
    assert environment.filters["rst"] is rst_text
    assert environment.filters["rst_literal"] is rst_literal


def test_report_params_are_short_in_the_report_and_whole_for_reruns_and_scripts() -> None:
    import pickle

    from sdcnn.workflow.report import ReportParam, report_param

    prompts = [{"prompt_id": f"p{i}", "text": "a circle"} for i in range(1000)]
    param = report_param(lambda wildcards: prompts)(None)
    assert str(param) == f"{param}" == "[1000 items]"  # what Snakemake's report writes
    assert repr(param) == repr(prompts)  # what its re-run check compares
    restored = pickle.loads(pickle.dumps(param))  # what a job's script gets
    assert type(restored) is list and restored == prompts
    assert ReportParam(["a"]) == ["a"] and ReportParam(["a"]) != ["b"]
