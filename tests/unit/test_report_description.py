"""The report's landing page (report/workflow.rst) renders without a docutils message for
every configuration its template branches on.

Rendered as ``snakemake --report`` renders it: the Jinja template with the filters of
sdcnn/reporting/rst.py, the config with the schema's defaults filled in, the link targets
Snakemake appends (one per category the run has), then docutils with Snakemake's settings.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import jinja2
import pytest
import yaml
from docutils import nodes
from docutils.core import publish_doctree
from snakemake.utils import validate

from sdcnn.reporting.rst import JINJA_FILTERS
from tests.support.workspace import REPO

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
COMBINATIONS = list(itertools.product(WEIGHTS, MODELS, PROMPTS, SHARDS, FIGURES, HELD_OUT))


def combination_config(weights: str, model: str, prompts: str, shards: str, figures: str) -> dict:
    """The default config with the named branches taken, its defaults filled in as the
    Snakefile's validation fills them."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["classifier"]["weights"] = WEIGHTS[weights]
    config["model"]["source"] = MODELS[model]
    if prompts == "sheet":
        config["prompts"] = "config/prompts.tsv"
    config["shards"] = SHARDS[shards]
    config["figures"] = dict(FIGURES[figures])
    validate(config, str(REPO / "config" / "schema.yaml"))
    return config


def write_summary(folder: Path, held_out: bool, labels: list[str]) -> None:
    """results/summary.json as the summary rule writes it, with or without held-out images."""
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
    summary.write_text(json.dumps(document), encoding="utf-8")


def link_targets(config: dict) -> str:
    """The targets Snakemake appends to the description: the two panels and one per
    category of the run's report items (rules/*.smk)."""
    categories = ["Contact sheets", "Probabilities", "Summary", "Run info"]
    if config["classifier"]["weights"] == "trained":
        categories.append("Training")
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
    ("weights", "model", "prompts", "shards", "figures", "held_out"),
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
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = combination_config(weights, model, prompts, shards, figures)
    monkeypatch.chdir(tmp_path)  # the template reads results/summary.json from the run's folder
    write_summary(tmp_path, held_out == "held-out", config["classifier"]["labels"])
    source = rendered_description(config)
    combination = (
        f"weights {weights}, model {model}, prompts as {prompts}, {shards}, {figures}, {held_out}"
    )
    problems = docutils_problems(source)
    assert not problems, f"{combination}:\n" + "\n".join(problems) + "\n---\n" + source


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
