"""What users write reaches the report as text, never as reStructuredText markup.

The captions (report/*.rst) are Jinja templates that Snakemake renders and hands to
docutils; prompts, ids and the model source go through the ``rst``/``rst_literal``
filters of sdcnn/reporting/rst.py.  Checked three ways: the filters on their own, every caption
template rendered as Snakemake renders it, and a real ``snakemake --report`` of a small
finished run whose prompts are full of reStructuredText.
"""

from __future__ import annotations

import copy
import html
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from docutils.core import publish_parts

from sdcnn.reporting.rst import JINJA_FILTERS, rst_literal, rst_text
from sdcnn.workflow.report import register_jinja_filters
from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow

NASTY = [
    "A ``weird`` city *at |sunset|",
    "- a list item?",
    ".. note:: a directive?",
    "a literal block follows::",
    "back\\slash, `tick`, _under_score_, link_, [1]_, |sub|_, **strong**",
    "`",
    "\\",
    "x`",
    "x\\",
    "two\nlines\n\n- and a list",
    "\ttabbed, trailing space ",
    "http://example.org/a_b and mail@example.org",
    "1. enumerated",
    ":field: list",
    "=====",
    "non-ASCII — “quotes” é",
]


def docutils_html(source: str, report_level: int = 1) -> str:
    """The HTML body docutils makes of ``source``, quietly; its messages from
    ``report_level`` on (1: info, 2: warnings, Snakemake's default) are in the body."""
    settings = {"report_level": report_level, "warning_stream": False}
    return publish_parts(source, writer="html", settings_overrides=settings)["body"]


def shown_text(markup: str) -> str:
    """What a browser shows of an HTML fragment, with runs of whitespace as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def one_line(text: str) -> str:
    return " ".join(text.split())


# ---- the filters


@pytest.mark.parametrize("text", NASTY)
def test_rst_text_shows_the_text_as_it_is(text: str) -> None:
    body = docutils_html(f"Prompt **{rst_text('id_-x')}**: {rst_text(text)} (end)")
    assert "system-message" not in body and "problematic" not in body
    assert shown_text(body) == f"Prompt id_-x: {one_line(text)} (end)"


@pytest.mark.parametrize("text", NASTY)
def test_rst_literal_shows_the_text_as_it_is(text: str) -> None:
    body = docutils_html(f"Prompt: {rst_literal(text)}. (end)")
    assert "system-message" not in body and "problematic" not in body
    assert shown_text(body) == f"Prompt: {one_line(text)}. (end)"
    assert "<tt" in body or "<code" in body  # monospace, as before


def test_rst_literal_of_blank_text_is_empty() -> None:
    assert rst_literal("  \n ") == "" and rst_text("") == ""


def test_unescaped_text_would_be_markup() -> None:
    """The check above can fail: the same text unescaped breaks the caption."""
    body = docutils_html(f"Prompt: ``{NASTY[0]}``.")
    assert "system-message" in body or shown_text(body) != f"Prompt: {NASTY[0]}."


def test_filters_reach_every_jinja_environment() -> None:
    register_jinja_filters()
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake
    assert environment.filters["rst"] is rst_text
    assert environment.filters["rst_literal"] is rst_literal


# ---- every caption template, rendered as Snakemake renders it


# what train_classifier's captions read of its training plan (input.plan)
PLAN_SETTINGS = {"epochs": 17, "batch_size": 4, "learning_rate": 0.002, "seed": 0,
                 "holdout_every": 5}  # fmt: skip


def fake_job(text: str, plan: Path) -> SimpleNamespace:
    """What a caption template reads of ``snakemake``, every string set to ``text``;
    ``plan``: a training plan file."""
    return SimpleNamespace(
        input={"plan": str(plan)},
        wildcards={"shard": "p_-1", "image": "p_-1_000"},  # without shards: shard = prompt
        params={
            "prompts": [
                {"prompt_id": "p_-1", "text": text, "negative_prompt": text, "n_images": 1}
            ],
            "sharded": False,
            "settings": {
                "base_seed": 7,
                "steps": 2,
                "scheduler": "ddim",
                "guidance_scale": 7.5,
                "width": 64,
                "height": 64,
                "size": 32,
                "grayscale": True,
                "interpolation": "area",
            },
            "model": {"source": text},
        },
        config={
            "model": {"source": text},
            "generation": {
                "steps": 2,
                "scheduler": "ddim",
                "guidance_scale": 7.5,
                "width": 64,
                "height": 64,
            },
            "preprocess": {"size": 32, "grayscale": True},
            "classifier": {"backend": "torch", "labels": ["a", "b"], "weights": None},
            "figures": {"charts": 24, "contact_sheets": None, "sheet_images": 16},
            "prompts": {"p_-1": {"text": text, "negative_prompt": text, "n_images": 1}},
        },
    )


TEMPLATES = sorted(path.name for path in (REPO / "report").glob("*.rst"))
# the link targets Snakemake appends to every caption (one per panel and category)
PANELS = ["Workflow", "Statistics", "Contact sheets", "Probabilities", "Summary"]
CATEGORIES = ["Run info", "Training"]
LINKS = "".join(f"\n.. _{name}: javascript:void(0)" for name in [*PANELS, *CATEGORIES])


def write_finished_summary(workdir: Path, label: str) -> None:
    """A results/summary.json with held-out metrics, as the captions read it (relative to
    the working directory, which is the run's folder under ``snakemake --report``)."""
    scores = {"precision": 1.0, "recall": None, "support": 1}
    metrics = {"holdout": {"n_images": 1, "accuracy": 1.0, "per_label": {label: scores}}}
    summary = workdir / "results" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"columns": [], "rows": [], "metrics": metrics}), "utf-8")


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("text", [NASTY[0], NASTY[2], NASTY[4], NASTY[9]])
def test_caption_template_shows_user_text_verbatim(
    template: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # in a folder of its own (not the repository, where `make run` may have left results/),
    # with held-out metrics whose one label is the nasty text
    monkeypatch.chdir(tmp_path)
    write_finished_summary(tmp_path, text)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"settings": PLAN_SETTINGS}), encoding="utf-8")
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(JINJA_FILTERS)
    source = (REPO / "report" / template).read_text(encoding="utf-8")
    rendered = environment.from_string(source + LINKS).render(snakemake=fake_job(text, plan))
    body = docutils_html(rendered, report_level=2)  # the link targets are unused: info
    assert "system-message" not in body and "problematic" not in body, rendered
    if "snakemake.params.prompt" in source or "config.prompts" in source:
        assert one_line(text) in shown_text(body)
    if "{% set prompt_id" in source:
        assert "p_-1" in shown_text(body)
    if "snakemake.input.plan" in source:
        shown = " ".join(shown_text(body).split()).lower()
        assert f"every {PLAN_SETTINGS['holdout_every']}th image" in shown


# ---- a real report of a run whose prompts are full of reStructuredText

RST_PROMPTS = {
    "weird_city-1": {
        "text": "A ``weird`` city *at |sunset| with a_b_ and back\\slash `ticks`",
        "negative_prompt": "- blurry, ..low quality::",
        "n_images": 1,
    },
    "notes_": {"text": "- .. harbor:: at dawn, [1]_ |x|_ **bold**::", "n_images": 1},
}


@pytest.fixture(scope="module")
def rst_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(report HTML, what ``snakemake --report`` printed) of a small finished run."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"] = RST_PROMPTS
    config["classifier"]["weights"] = "glorot"  # no labels: nothing to train on
    workdir = copy_workflow(tmp_path_factory.mktemp("rst_run"), config)
    run_snakemake(workdir)
    report = workdir / "report.html"
    result = run_snakemake(workdir, "--report", str(report))
    return report.read_text(encoding="utf-8"), result.stdout + result.stderr


def embedded(page: str, name: str) -> Any:
    """A JSON value the report's page script defines as ``var <name> = ...;``."""
    match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', page, re.S)
    assert match, f"the report defines no {name}"
    return json.loads(match.group(1))


@pytest.mark.pipeline
def test_report_has_no_docutils_messages(rst_report: tuple[str, str]) -> None:
    page, printed = rst_report
    assert not re.search(r"\((INFO|WARNING|ERROR|SEVERE)/\d\)", printed), printed[-3000:]
    assert "System Message" not in page and "system-message" not in page


@pytest.mark.pipeline
def test_report_shows_the_prompts_verbatim(rst_report: tuple[str, str]) -> None:
    page, _ = rst_report
    results = embedded(page, "results")
    description = shown_text(json.loads(re.search(r"var workflow_desc = (.*?);\n", page)[1]))
    for prompt_id, prompt in RST_PROMPTS.items():
        texts = [prompt["text"], prompt.get("negative_prompt")]
        sheet = shown_text(results[f"results/contact_sheets/{prompt_id}.png"]["caption"])
        chart = shown_text(results[f"results/charts/{prompt_id}/{prompt_id}_000.png"]["caption"])
        assert f"prompt {prompt_id}: {prompt['text']}" in sheet
        assert prompt_id in chart
        assert f"{prompt_id}, 1 image: {prompt['text']}" in description
        for text in filter(None, texts):
            assert text in description
    for entry in results.values():
        assert "system-message" not in entry["caption"]


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
