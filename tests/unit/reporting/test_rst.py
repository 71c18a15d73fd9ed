"""What users write reaches the report as text, never as reStructuredText markup
(sdcnn/reporting/rst.py); the report's landing page renders without a docutils message.

The captions (report/*.rst) are Jinja templates that Snakemake renders and hands to
docutils; prompts, ids and the model source go through the ``rst``/``rst_literal``
filters.  Checked on the filters alone and on every caption template rendered as Snakemake
renders it (a real ``snakemake --report``: tests/workflow/test_report.py).  The landing page
(report/workflow.rst) is rendered for every configuration its template branches on: the
Jinja template with the filters, the config with the schema's defaults filled in, the link
targets Snakemake appends (one per category the run has), then docutils with Snakemake's
settings."""

from __future__ import annotations

import copy
import html
import itertools
import json
import re
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from docutils import nodes
from docutils.core import publish_doctree, publish_parts
from snakemake.utils import validate

from sdcnn.core.fileio import write_json_atomic
from sdcnn.evaluate.scores import RealCounts, evaluation_metrics
from sdcnn.reporting.rst import JINJA_FILTERS, rst_literal, rst_text
from tests.support.workspace import REPO

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


# ---- every caption template, rendered as Snakemake renders it


# what train_classifier's captions read of its training plan (input.plan)
PLAN_SETTINGS = {
    "epochs": 17,
    "batch_size": 4,
    "learning_rate": 0.002,
    "seed": 0,
    "holdout_every": 5,
}


def fake_job(text: str, plan: Path, metrics: Path | None = None) -> SimpleNamespace:
    """What a caption template reads of ``snakemake``, every string set to ``text``;
    ``plan``: a training plan file; ``metrics``: an evaluation metrics file."""
    return SimpleNamespace(
        input={"plan": str(plan), "metrics": str(metrics)},
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
    metrics = tmp_path / "metrics.json"
    write_json_atomic(
        metrics, evaluation_metrics(RealCounts.from_records(evaluated(text), [text, "other"]))
    )
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(JINJA_FILTERS)
    source = (REPO / "report" / template).read_text(encoding="utf-8")
    job = fake_job(text, plan, metrics)
    rendered = environment.from_string(source + LINKS).render(snakemake=job)
    body = docutils_html(rendered, report_level=2)  # the link targets are unused: info
    assert "system-message" not in body and "problematic" not in body, rendered
    if "snakemake.params.prompt" in source or "config.prompts" in source:
        assert one_line(text) in shown_text(body)
    if "{% set prompt_id" in source:
        assert "p_-1" in shown_text(body)
    if "snakemake.input.plan" in source:
        shown = " ".join(shown_text(body).split()).lower()
        assert f"every {PLAN_SETTINGS['holdout_every']}th image" in shown
    if "snakemake.input.metrics" in source:
        shown = " ".join(shown_text(body).split())
        assert "Real accuracy 0.500 (1 of 2; 1 more without a label)" in shown


def evaluated(label: str) -> list[dict[str, str | None]]:
    """What evaluation.rst is shown: two real images of ``label``, one of them right, and
    one image without a label."""
    return [
        {"label": label, "top_label": label},
        {"label": label, "top_label": "other"},
        {"label": None, "top_label": label},
    ]


TEMPLATE = (REPO / "report" / "workflow.rst").read_text(encoding="utf-8")
DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))

# what the template branches on, and the values each branch takes
WEIGHTS = {"trained": "trained", "glorot": "glorot", "file": "weights/cnn.safetensors"}
MODELS = {"demo": "demo", "other": "models/sd-turbo"}
PROMPTS = ("mapping", "sheet")
SHARDS = {"unsharded": None, "sharded": 4}
FIGURES = {
    "figures-null": {"charts": None, "contact_sheets": None, "sheet_images": None},
    "figures-set": {"charts": 1, "contact_sheets": 8, "sheet_images": 16},
}
HELD_OUT = ("held-out", "no-held-out")
REAL = {"real": "demo", "no-real": None}  # evaluation.real
COMBINATIONS = list(itertools.product(WEIGHTS, MODELS, PROMPTS, SHARDS, FIGURES, HELD_OUT, REAL))


def combination_config(
    weights: str, model: str, prompts: str, shards: str, figures: str, real: str = "real"
) -> dict:
    """The default config with the named branches taken, its defaults filled in as the
    Snakefile's validation fills them."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["evaluation"]["real"] = REAL[real]
    config["classifier"]["weights"] = WEIGHTS[weights]
    config["model"]["source"] = MODELS[model]
    if prompts == "sheet":
        config["prompts"] = "config/prompts.tsv"
    config["shards"] = SHARDS[shards]
    config["figures"] = dict(FIGURES[figures])
    validate(config, str(REPO / "config" / "schema.yaml"))
    return config


def write_summary(folder: Path, held_out: bool, labels: list[str], real: bool = False) -> None:
    """results/summary.json as the summary rule writes it, with or without held-out images,
    each prompt's diversity (one flagged), and with real images their scores."""
    n_images = 6 if held_out else 0
    scores = {"precision": 0.5 if held_out else None, "recall": None, "support": 2}
    holdout = {
        "n_images": n_images,
        "accuracy": 0.5 if held_out else None,
        "per_label": {label: scores for label in labels},
    }
    summary = folder / "results" / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    document = {"columns": [], "rows": [], "metrics": {"holdout": holdout, "train": holdout}}
    document["diversity"] = DIVERSITY
    if real:
        records = [
            {"label": labels[0], "top_label": labels[0]},
            {"label": None, "top_label": labels[1]},
        ]
        counts = RealCounts.from_records(records, labels)
        holdout_scores = {**holdout, "confusion_matrix": {"counts": [[3, 0], [0, 0]]}}
        document["evaluation"] = evaluation_metrics(counts, holdout_scores if held_out else None)
    summary.write_text(json.dumps(document), encoding="utf-8")


# what the summary says of the prompts' diversity (shown on the front page)
DIVERSITY = {
    "prompts": [
        {
            "prompt_id": "p_-1",
            "n_images": 4,
            "mean_distance": 0.01,
            "flag": True,
            "n_with_near_duplicate": 4,
        },
        {
            "prompt_id": "quiet",
            "n_images": 1,
            "mean_distance": None,
            "flag": False,
            "n_with_near_duplicate": 0,
        },
    ],
    "least_diverse": ["p_-1", "quiet"],
}


def link_targets(config: dict) -> str:
    """The targets Snakemake appends to the description: the two panels and one per
    category of the run's report items (rules/*.smk)."""
    categories = ["Contact sheets", "Probabilities", "Summary", "Run info"]
    if config["classifier"]["weights"] == "trained":
        categories.append("Training")
    if config["evaluation"]["real"] is not None:
        categories.append("Evaluation")
    names = ["Workflow", "Statistics", *sorted(categories)]
    return "\n\n" + "\n".join(f".. _{name}: javascript:void(0)" for name in names) + "\n"


def rendered_description(config: dict) -> str:
    """The reStructuredText Snakemake hands to docutils for ``config``."""
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake
    environment.filters.update(JINJA_FILTERS)

    class Snakemake:
        pass

    Snakemake.config = config
    template = environment.from_string(TEMPLATE + link_targets(config))
    return template.render(snakemake=Snakemake)


def docutils_problems(source: str) -> list[str]:
    """The system messages (at Snakemake's report level: warnings and worse) and
    problematic nodes docutils makes of ``source``."""
    settings = {"report_level": 2, "halt_level": 5, "warning_stream": False}
    tree = publish_doctree(source, settings_overrides=settings)
    problems = [
        f"{node['type']} (line {node.get('line')}): {node.astext()}"
        for node in tree.findall(nodes.system_message)
        if node["level"] >= 2
    ]
    problems += [f"problematic: {node.astext()}" for node in tree.findall(nodes.problematic)]
    return problems


@pytest.mark.parametrize(
    ("weights", "model", "prompts", "shards", "figures", "held_out", "real"),
    COMBINATIONS,
    ids=["-".join(combination) for combination in COMBINATIONS],
)
def test_description_renders_cleanly(
    weights: str,
    model: str,
    prompts: str,
    shards: str,
    figures: str,
    held_out: str,
    real: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = combination_config(weights, model, prompts, shards, figures, real)
    monkeypatch.chdir(tmp_path)  # the template reads results/summary.json from the run's folder
    labels = config["classifier"]["labels"]
    write_summary(tmp_path, held_out == "held-out", labels, real == "real")
    source = rendered_description(config)
    combination = (
        f"weights {weights}, model {model}, prompts as {prompts}, {shards}, {figures}, "
        f"{held_out}, {real}"
    )
    problems = docutils_problems(source)
    assert not problems, f"{combination}:\n" + "\n".join(problems) + "\n---\n" + source
    shown = " ".join(shown_text(docutils_html(source, report_level=2)).split())
    assert ("Real accuracy 1.000: 1 of 1 real images" in shown) == (real == "real"), shown
    assert "p_-1 (flagged): 4 of 4 images in a near-duplicate pair, mean distance 0.010" in shown


def test_where_to_look_lists_every_category_of_a_trained_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = combination_config("trained", "demo", "mapping", "sharded", "figures-set")
    monkeypatch.chdir(tmp_path)
    write_summary(tmp_path, True, config["classifier"]["labels"])
    tree = publish_doctree(rendered_description(config), settings_overrides={"report_level": 5})
    lists = list(tree.findall(nodes.bullet_list))
    where_to_look = [item.astext().split(":")[0] for item in lists[-1].children]
    assert where_to_look == ["Contact sheets", "Probabilities", "Summary", "Run info", "Training"]


def test_a_broken_description_is_caught() -> None:
    """The check can fail: the indentation error the report once showed."""
    broken = (
        "Paragraph text\n- `Run info`_: a bullet\n  continued.\n\n"
        ".. _Run info: javascript:void(0)\n"
    )
    assert any("Unexpected indentation" in problem for problem in docutils_problems(broken))
