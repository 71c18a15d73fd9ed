"""Changing the config or the code re-runs exactly the affected jobs, and nothing else.

Each case edits a copy of a finished run (config or code), asks ``snakemake -n``
which jobs it would run, compares with the expected set, and restores the edit.
Aggregates (summary, manifest, all, and later report rules) may always run.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdcnn.config.check import check_config, key_name, load_schema
from sdcnn.config.prompts import PromptRules, load_prompts
from sdcnn.config.reruns import (
    ALL_PROMPTS,
    ITS_SHARD,
    REAL_SHARD_RULES,
    SHARD_RULES,
    Effect,
    UndeclaredEffect,
    declared_effects,
    leaf_keys,
    rerun_table,
)
from sdcnn.core.shards import assign_shards, quota, shard_name
from tests.support.configs import SMALL_CONFIG
from tests.support.job_plan import JobPlan, dry_run
from tests.support.real_sets import SMALL_REAL_FILES, SMALL_REAL_SHARDS, write_real_picture
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, write_config

pytestmark = pytest.mark.pipeline
RULES = PromptRules.from_schema(load_schema(REPO / "config" / "schema.yaml"))

PROMPT_IDS = list(SMALL_CONFIG["prompts"])
# the per-prompt chain, in order: a change at one stage re-runs it and every later stage,
# and then the prompt's pictures for people (probability charts and contact sheet) and its
# records in the data set export
CHAIN = ["generate", "preprocess", "diversity", "predict"]
PICTURES = ["figures", "dataset"]
AGGREGATES = {"summary", "manifest", "all", "summary_page", "run_info", "evaluation_figure"}
# the small run's real images (SMALL_CONFIG's evaluation.real), in their two shards
REAL_SHARDS = list(SMALL_REAL_SHARDS)
REAL_PREDICTIONS = {f"predict_real[{shard}]" for shard in REAL_SHARDS}
REAL_CHAIN = REAL_PREDICTIONS | {f"preprocess_real[{shard}]" for shard in REAL_SHARDS}


def chain_from(stage: str, prompts: Iterable[str]) -> set[str]:
    rules = CHAIN[CHAIN.index(stage) :] + PICTURES
    return {f"{rule}[{p}]" for rule in rules for p in prompts}


def pictures(*rules: str) -> set[str]:
    return {f"{rule}[{p}]" for rule in rules for p in PROMPT_IDS}


def job_names(plan: JobPlan) -> set[str]:
    """A plan's jobs as ``rule`` or ``rule[shard]`` (a real shard's too), aggregates left out."""
    names = set()
    for rule, wildcards in plan.jobs:
        shard = wildcards.get("shard", wildcards.get("real_shard"))
        if rule not in AGGREGATES:
            names.add(rule if shard is None else f"{rule}[{shard}]")
    return names


def planned_jobs(workdir: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The jobs ``snakemake --dry-run ARGS`` would run, as ``rule`` or ``rule[shard]``,
    aggregates left out."""
    return job_names(dry_run(workdir, *args, env=env)[0])


@pytest.fixture(scope="module")
def finished(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the finished small run (results, store and Snakemake's records)."""
    workdir = tmp_path_factory.mktemp("reruns") / "workflow"
    shutil.copytree(small_run, workdir, symlinks=True)
    assert planned_jobs(workdir) == set(), "the copied run should be complete"
    return workdir


# The small run's prompts and two unlabelled ones, one job per prompt or in 2 shards:
# city, harbor (labelled) and bike share 2-of-2, tree is alone in 1-of-2 (a hash of the id)
FOUR_PROMPTS = {
    **SMALL_CONFIG["prompts"],
    "bike": {"text": "A red bicycle", "n_images": 1},
    "tree": {"text": "An old oak tree", "n_images": 1},
}
LAYOUTS = {"one job per prompt": None, "2 shards": 2}  # -> config `shards`
OWN_WEIGHTS = "my-weights.safetensors"


def finished_copy(
    small_run: Path, folder: Path, shards: int | None, weights: str = "trained"
) -> Path:
    """The small run's copy with FOUR_PROMPTS in ``shards`` and ``weights`` (trained, glorot,
    or OWN_WEIGHTS: the small run's trained tensors in a file that records no labels), run
    to the end (its images from the copied image store, but bike's and tree's)."""
    workdir = folder / "workflow"
    shutil.copytree(small_run, workdir, symlinks=True)
    config = {**copy.deepcopy(SMALL_CONFIG), "prompts": FOUR_PROMPTS, "shards": shards}
    config["classifier"]["weights"] = weights
    if weights == OWN_WEIGHTS:  # the trained tensors, recording no labels (as another tool's)
        from safetensors.numpy import load_file, save_file

        tensors = load_file(workdir / "results/weights/trained.safetensors")
        save_file(tensors, workdir / OWN_WEIGHTS)
    write_config(workdir, config)
    run_snakemake(workdir)
    assert planned_jobs(workdir) == set(), "the run should be complete"
    return workdir


@pytest.fixture(scope="module")
def finished_four(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_copy(small_run, tmp_path_factory.mktemp("reruns-four"), None)


@pytest.fixture(scope="module")
def finished_sharded(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert assign_shards(list(FOUR_PROMPTS), 2) == {
        "1-of-2": ["tree"],
        "2-of-2": ["city", "harbor", "bike"],
    }
    return finished_copy(small_run, tmp_path_factory.mktemp("reruns-sharded"), 2)


@pytest.fixture(scope="module")
def finished_glorot(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FOUR_PROMPTS with seeded Glorot weights (classifier.weights: glorot), finished."""
    return finished_copy(small_run, tmp_path_factory.mktemp("reruns-glorot"), None, "glorot")


@pytest.fixture(scope="module")
def finished_own_weights(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FOUR_PROMPTS with a weights file of the user's that records no labels, finished."""
    folder = tmp_path_factory.mktemp("reruns-own-weights")
    return finished_copy(small_run, folder, None, OWN_WEIGHTS)


def finished_layout(request: pytest.FixtureRequest, layout: str) -> Path:
    sharded = LAYOUTS[layout] is not None
    return request.getfixturevalue("finished_sharded" if sharded else "finished_four")


@contextlib.contextmanager
def config_change(workdir: Path, change: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    path = workdir / "config" / "config.yaml"
    original = path.read_bytes()
    config = yaml.safe_load(original)
    change(config)
    write_config(workdir, config)
    try:
        yield
    finally:
        path.write_bytes(original)


CODE_EDIT = b"\n_AN_EDIT = 1\n"  # a statement: the code does something new
COMMENT_EDIT = b"\n# an edit\n"


@contextlib.contextmanager
def code_change(
    workdir: Path, relative: str, edit: Callable[[bytes], bytes] = lambda code: code + CODE_EDIT
) -> Iterator[None]:
    """Edit a code file (by default: append a statement); afterwards restore its bytes and
    its mtime (Snakemake compares a script's mtime with its outputs', so an edit undone
    must be undone in time too)."""
    path = workdir / relative
    original, stat = path.read_bytes(), path.stat()
    changed = edit(original)
    assert changed != original
    path.write_bytes(changed)
    try:
        yield
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def setter(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value

    return change


ALL = PROMPT_IDS
CITY, HARBOR = chain_from("generate", ["city"]), chain_from("generate", ["harbor"])
FROM_GENERATE = chain_from("generate", ALL)
FROM_PREPROCESS = chain_from("preprocess", ALL)
FROM_PREDICT = chain_from("predict", ALL)
NEW_WEIGHTS = {"init_weights"}
TRAINING_JOBS = {"training_plan", "train_classifier"} | REAL_PREDICTIONS  # new weights
SHARD_2, SHARD_1 = "2-of-2", "1-of-2"  # city, harbor, bike | tree

# ---- every leaf key of config/schema.yaml, with the effect it declares (x-reruns)

SCHEMA = load_schema(REPO / "config" / "schema.yaml")
EFFECTS = {effect.name: effect for effect in declared_effects(SCHEMA)}
SPECS = {key_name(key): spec for key, spec in leaf_keys(SCHEMA)}
CHANGED_PROMPT = "city"  # a prompt's own keys are changed on this prompt


def current_value(config: dict[str, Any], key: tuple[str, ...]) -> Any:
    value: Any = check_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")
    for part in key:
        value = value[CHANGED_PROMPT if part == ALL_PROMPTS else part]
    return value


def other_value(spec: dict[str, Any], value: Any) -> Any:
    """A valid value other than ``value``, from the key's schema."""
    if "enum" in spec:
        return next(option for option in spec["enum"] if option != value)
    kinds = spec.get("type", "integer" if "$ref" in spec else None)
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if value is None:
        return spec.get("minimum", 1) + 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        step = spec.get("multipleOf", 1)
        return value + step if value + step <= spec.get("maximum", 2**31) else value - step
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return f"{value} changed" if value else "changed"
    raise AssertionError(f"no automatic change for a value of type {type(value).__name__}")


def use_an_equivalent_sheet(workdir: Path, config: dict[str, Any]) -> None:
    """The same prompts as a prompt sheet: the sheet's content decides, not its form."""
    prompts = check_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")["prompts"]
    lines = ["prompt_id\ttext\tnegative_prompt\tn_images\tlabel"]
    lines += [
        f"{pid}\t{p['text']}\t{p['negative_prompt']}\t{p['n_images']}\t{p['label'] or ''}"
        for pid, p in prompts.items()
    ]
    (workdir / "prompts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config["prompts"] = "prompts.tsv"


def copy_of_the_demo_model(workdir: Path, config: dict[str, Any]) -> None:
    target = workdir / "models" / "local"
    if not target.exists():
        shutil.copytree(workdir / "sdcnn/demo/assets/demo-pipeline", target)
    config.setdefault("model", {})["source"] = "models/local"


def copy_of_the_weights(workdir: Path, config: dict[str, Any]) -> None:
    shutil.copy(workdir / "results/weights/trained.safetensors", workdir / "my-weights.safetensors")
    config["classifier"]["weights"] = "my-weights.safetensors"


RENAMED_SHEET = Path("real/renamed.tsv")  # the real set, its labels renamed


def renamed_labels(workdir: Path, config: dict[str, Any]) -> None:
    """Other names, as many (x-reruns-note), and the prompts' labels renamed with them, and
    the real images' (as a sheet beside them: the same paths, so the same images)."""
    names = dict(zip(config["classifier"]["labels"], ["a", "b", "c"], strict=True))
    config["classifier"]["labels"] = list(names.values())
    for prompt in config["prompts"].values():
        if prompt.get("label") is not None:
            prompt["label"] = names[prompt["label"]]
    if config.get("evaluation", {}).get("real") is not None:
        rows = [f"{path}\t{names[path.split('/')[0]]}" for path in SMALL_REAL_FILES]
        text = "path\tlabel\n" + "\n".join(rows) + "\n"
        (workdir / RENAMED_SHEET).write_text(text, encoding="utf-8")
        config["evaluation"]["real"] = str(RENAMED_SHEET)


def remove_renamed_sheet(workdir: Path) -> None:
    (workdir / RENAMED_SHEET).unlink(missing_ok=True)


def real_shards(workdir: Path, config: dict[str, Any]) -> list[str]:
    """The shards of a checked config's real images (none without a real set)."""
    from sdcnn.evaluate.real_images import read_real_images, shard_real_images

    source = config["evaluation"]["real"]
    if source is None:
        return []
    images = read_real_images(workdir / source, config["classifier"]["labels"], check="none")
    return list(shard_real_images(images, config["evaluation"]["shards"]))


ANOTHER_REAL_SET = "real-2"


def another_real_set(workdir: Path, config: dict[str, Any]) -> None:
    """A real set of other pictures under another name: every real shard's two jobs."""
    folder = workdir / ANOTHER_REAL_SET
    for index, relative in enumerate(["ship/x.png", "ship/y.png", "dog/z.png"]):
        write_real_picture(folder / relative, 2_000_000 + index)
    config["evaluation"]["real"] = ANOTHER_REAL_SET


# keys whose new value needs more than the schema can say
SPECIAL_CHANGES: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "prompts": use_an_equivalent_sheet,
    "model.source": copy_of_the_demo_model,
    "classifier.weights": copy_of_the_weights,
    "classifier.labels": renamed_labels,
    "evaluation.real": another_real_set,
}
# what undoes a special change beyond the config
SPECIAL_UNDOS: dict[str, Callable[[Path], None]] = {"classifier.labels": remove_renamed_sheet}
SPECIAL_VALUES = {
    "classifier.backend": "auto",  # torch here: flux needs julia (tests/contract/test_backend.py)
    "prompts.*.label": "cat",  # another of classifier.labels
}


def apply_key_change(workdir: Path, config: dict[str, Any], name: str) -> None:
    if name in SPECIAL_CHANGES:
        SPECIAL_CHANGES[name](workdir, config)
        return
    key = EFFECTS[name].key
    value = SPECIAL_VALUES.get(name)
    if value is None:
        value = other_value(SPECS[name], current_value(config, key))
    target = config
    for part in key[:-1]:
        target = target.setdefault(CHANGED_PROMPT if part == ALL_PROMPTS else part, {})
    target[key[-1]] = value


def expected_jobs(effect: Effect, config: dict[str, Any], workdir: Path) -> set[str]:
    """The declared effect as job names of the changed config's dry run."""
    with contextlib.chdir(workdir):  # the config's paths are the workflow folder's
        checked = check_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")
    sheet = checked["prompts"]
    prompts = load_prompts(str(workdir / sheet) if isinstance(sheet, str) else sheet, RULES)
    every_shard = assign_shards(prompts, checked["shards"])
    its_shard = [name for name, ids in every_shard.items() if CHANGED_PROMPT in ids]
    jobs = set()
    for declared in effect.rules:
        rule = declared.removesuffix(ITS_SHARD)
        if rule in REAL_SHARD_RULES:
            jobs |= {f"{rule}[{shard}]" for shard in real_shards(workdir, checked)}
            continue
        if rule not in SHARD_RULES:
            jobs.add(rule)
            continue
        shards = its_shard if declared.endswith(ITS_SHARD) else every_shard
        jobs |= {f"{rule}[{shard}]" for shard in shards}
    return jobs


# figures' limits, shared out over the shards by their number (sdcnn.core.shards.quota): with
# shards, a change re-draws the figures of the shards whose share changes, no others
SHARED_OUT = {"figures.charts", "figures.contact_sheets"}


def shares_changed(name: str, before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    key = EFFECTS[name].key
    old, new = current_value(before, key), current_value(after, key)
    n_shards = after["shards"]
    return {
        f"figures[{shard_name(index, n_shards)}]"
        for index in range(n_shards)
        if quota(old, index, n_shards) != quota(new, index, n_shards)
    }


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(EFFECTS))
def test_each_config_key_reruns_what_the_schema_declares(
    request: pytest.FixtureRequest, layout: str, name: str
) -> None:
    """Every leaf key of the schema, in both layouts: a change plans exactly its declared
    x-reruns (`@shard`: the changed prompt's shard; without shards, the prompt itself)."""
    finished = finished_layout(request, layout)
    effect = EFFECTS[name]
    path = finished / "config" / "config.yaml"
    original = path.read_bytes()
    config = yaml.safe_load(original)
    try:
        apply_key_change(finished, config, name)
        write_config(finished, config)
        planned = planned_jobs(finished)
        expected = expected_jobs(effect, config, finished)
    finally:
        path.write_bytes(original)
        if name in SPECIAL_UNDOS:
            SPECIAL_UNDOS[name](finished)
    if name in SHARED_OUT and config["shards"]:  # x-reruns-note: "of those whose share changes"
        expected = shares_changed(name, yaml.safe_load(original), config)
    assert planned == expected, (
        f"changing {name} plans {sorted(planned)}, but config/schema.yaml declares "
        f"{sorted(expected)} (x-reruns: {list(effect.rules)}): unexpected "
        f"{sorted(planned - expected)}, missing {sorted(expected - planned)}"
    )


def test_every_leaf_key_declares_its_effect() -> None:
    """A new config key must say what it re-runs (or declared_effects raises, naming it)."""
    assert set(EFFECTS) == set(SPECS)
    broken = copy.deepcopy(SCHEMA)
    del broken["properties"]["generation"]["properties"]["steps"]["x-reruns"]
    with pytest.raises(UndeclaredEffect, match=r"generation\.steps"):
        declared_effects(broken)


def test_the_readme_table_is_the_schemas() -> None:
    readme = (REPO / "docs" / "reruns.md").read_text(encoding="utf-8")
    table = rerun_table(SCHEMA)
    assert table in readme, (
        "docs/reruns.md's re-run table differs from config/schema.yaml's x-reruns; paste the "
        f"output of `python -m sdcnn.config.reruns`:\n{table}"
    )


# ---- every branch of every x-reruns-note
#
# A note says what a key's change re-runs in cases other than the one x-reruns declares
# ("with classifier.weights glorot: ..."). Each note's branches are listed here: a real dry
# run on a finished run in the state the branch is about (a ``Branch``), or the test that
# holds it already (``HeldBy``). A note without its branches here fails
# test_every_rerun_note_lists_its_branches.

# the finished runs a branch starts from (module fixtures above)
STATES = {
    "trained": "finished_four",  # FOUR_PROMPTS, one job per prompt, trained weights
    "sharded": "finished_sharded",  # the same in 2 shards
    "glorot": "finished_glorot",  # classifier.weights: glorot
    "own weights": "finished_own_weights",  # classifier.weights: a file
}
FOUR_PREDICTIONS = chain_from("predict", FOUR_PROMPTS) | REAL_PREDICTIONS
THE_KEY_TEST = "tests/workflow/test_reruns.py::test_each_config_key_reruns_what_the_schema_declares"


@dataclasses.dataclass(frozen=True)
class Branch:
    """A branch of a note checked here: from ``state``, ``change`` plans ``expected``."""

    state: str
    change: Callable[[Path, dict[str, Any]], None]
    expected: set[str]
    undo: Callable[[Path], None] | None = None  # what undoes ``change`` beyond the config


@dataclasses.dataclass(frozen=True)
class HeldBy:
    """A branch of a note that a test elsewhere holds (``path::function``)."""

    test: str


def set_key(*path: str, value: Any) -> Callable[[Path, dict[str, Any]], None]:
    change = setter(*path, value=value)
    return lambda workdir, config: change(config)


def rename_an_unused_label(workdir: Path, config: dict[str, Any]) -> None:
    """cat, which no prompt is labelled with, renamed: only predict's labels param changes
    (no prompt's truth, not the number of outputs)."""
    labels = config["classifier"]["labels"]
    labels[labels.index("cat")] = "kitten"


def two_labels_unused(workdir: Path, config: dict[str, Any]) -> None:
    """One label fewer (cat, which no prompt uses): a CNN with another output count."""
    config["classifier"]["labels"].remove("cat")


TRAINED = Path("results/weights/trained.safetensors")
ASIDE = TRAINED.with_suffix(".aside")


def to_trained_with_no_trained_weights(workdir: Path, config: dict[str, Any]) -> None:
    """classifier.weights: trained, in a run whose trained weights are not there (as in a
    run that only ever had glorot ones); ``trained_weights_back`` undoes it."""
    (workdir / TRAINED).rename(workdir / ASIDE)
    config["classifier"]["weights"] = "trained"


def trained_weights_back(workdir: Path) -> None:
    (workdir / ASIDE).rename(workdir / TRAINED)


def as_sheet_and_back(workdir: Path, config: dict[str, Any]) -> None:
    """Run the same prompts from a sheet to the end, then plan with the mapping again."""
    as_sheet = copy.deepcopy(config)
    use_an_equivalent_sheet(workdir, as_sheet)
    write_config(workdir, as_sheet)
    run_snakemake(workdir)


def unlabelled(key: str, value: Any) -> dict[str, Branch]:
    """A prompt key's change on bike (unlabelled): its five steps, in its job or shard."""
    return {
        "an unlabelled prompt, one job per prompt": Branch(
            "trained",
            set_key("prompts", "bike", key, value=value),
            chain_from("generate", ["bike"]),
        ),
        "an unlabelled prompt, in a shard with labelled ones": Branch(
            "sharded",
            set_key("prompts", "bike", key, value=value),
            chain_from("generate", [SHARD_2]),
        ),
        "a labelled prompt": HeldBy(THE_KEY_TEST),
    }


# the real set's edits (SMALL_REAL_SHARDS: dog/a, dog/b, ship/b in 1-of-2, ship/a in 2-of-2)
ADDED_REAL = Path("real/dog/d.png")  # in 1-of-2, by the hash of its path
REMOVED_REAL, EDITED_REAL = Path("real/dog/b.png"), Path("real/dog/a.png")
REAL_ASIDE = Path("real-aside.png")


def add_real_image(workdir: Path, config: dict[str, Any]) -> None:
    write_real_picture(workdir / ADDED_REAL, 3_000_000)


def remove_added_image(workdir: Path) -> None:
    (workdir / ADDED_REAL).unlink()


def remove_real_image(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / REMOVED_REAL).rename(workdir / REAL_ASIDE)


def edit_real_image(workdir: Path, config: dict[str, Any]) -> None:
    shutil.copy2(workdir / EDITED_REAL, workdir / REAL_ASIDE)  # its bytes and mtime
    write_real_picture(workdir / EDITED_REAL, 3_000_001)


def put_back(path: Path) -> Callable[[Path], None]:
    """Undo: the image set aside at REAL_ASIDE back at ``path`` (bytes and mtime)."""
    return lambda workdir: (workdir / REAL_ASIDE).replace(workdir / path)


WITH_NEW_TENSORS = chain_from("preprocess", FOUR_PROMPTS) | {"init_weights"} | REAL_PREDICTIONS
WITH_NEW_TENSORS |= {f"preprocess_real[{shard}]" for shard in REAL_SHARDS}
NOTE_BRANCHES: dict[str, dict[str, Branch | HeldBy]] = {
    "prompts": {
        "a mapping to a sheet": HeldBy(THE_KEY_TEST),
        "a sheet back to a mapping": Branch("trained", as_sheet_and_back, set()),
    },
    "prompts.*.text": unlabelled("text", "A blue bicycle"),
    "prompts.*.negative_prompt": unlabelled("negative_prompt", "rust"),
    "prompts.*.n_images": unlabelled("n_images", 2),
    "prompts.*.label": {
        "trained weights": HeldBy(THE_KEY_TEST),
        "glorot": Branch(
            "glorot",
            set_key("prompts", "bike", "label", value="cat"),
            chain_from("predict", ["bike"]),
        ),
        "a weights file": Branch(
            "own weights",
            set_key("prompts", "bike", "label", value="cat"),
            chain_from("predict", ["bike"]),
        ),
    },
    "shards": {
        "no image computed, the same weights": HeldBy(
            "tests/workflow/test_shards.py::test_changing_shards_computes_no_image"
        ),
    },
    "gpu_fallback": {"any": HeldBy(THE_KEY_TEST)},
    "generation.gpu": {
        "here": HeldBy(THE_KEY_TEST),
        "a profile's set-resources": HeldBy(
            "tests/workflow/test_reruns.py::"
            "test_a_labelled_images_runtime_change_regenerates_and_retrains"
        ),
    },
    "model.allow_download": {"any": HeldBy(THE_KEY_TEST)},
    "preprocess.size": {
        "trained weights": HeldBy(THE_KEY_TEST),
        "glorot": Branch("glorot", set_key("preprocess", "size", value=16), WITH_NEW_TENSORS),
    },
    "preprocess.grayscale": {
        "trained weights": HeldBy(THE_KEY_TEST),
        "glorot": Branch(
            "glorot", set_key("preprocess", "grayscale", value=False), WITH_NEW_TENSORS
        ),
    },
    "preprocess.threads": {"any": HeldBy(THE_KEY_TEST)},
    "classifier.labels": {
        "trained weights": HeldBy(THE_KEY_TEST),
        "glorot, a label renamed": Branch("glorot", rename_an_unused_label, FOUR_PREDICTIONS),
        "glorot, a label fewer": Branch(
            "glorot", two_labels_unused, NEW_WEIGHTS | FOUR_PREDICTIONS
        ),
        "a weights file recording no labels, a label renamed": Branch(
            "own weights", rename_an_unused_label, FOUR_PREDICTIONS
        ),
        "a weights file recording its labels": HeldBy(
            "tests/unit/classify/test_weights.py::test_labels_must_match_the_file"
        ),
    },
    "classifier.weights": {
        "to your own file": HeldBy(THE_KEY_TEST),
        "to glorot": Branch(
            "trained",
            set_key("classifier", "weights", value="glorot"),
            NEW_WEIGHTS | FOUR_PREDICTIONS,
        ),
        "to trained, never trained before": Branch(
            "glorot",
            to_trained_with_no_trained_weights,
            {"train_classifier"} | FOUR_PREDICTIONS,
            trained_weights_back,
        ),
        "to trained, its weights up to date from before": Branch(
            "glorot", set_key("classifier", "weights", value="trained"), FOUR_PREDICTIONS
        ),
    },
    "classifier.weights_seed": {
        "trained weights": HeldBy(THE_KEY_TEST),
        "glorot": Branch(
            "glorot", set_key("classifier", "weights_seed", value=4), NEW_WEIGHTS | FOUR_PREDICTIONS
        ),
    },
    "classifier.backend": {
        "auto, resolving to the backend that ran": HeldBy(THE_KEY_TEST),
        "torch to flux": HeldBy(
            "tests/contract/test_backend.py::"
            "test_switching_to_flux_plans_only_the_julia_setup_and_predict"
        ),
    },
    "classifier.gpu": {"any": HeldBy(THE_KEY_TEST)},
    "evaluation.real": {
        "another set": HeldBy(THE_KEY_TEST),
        "an image added": Branch(
            "trained",
            add_real_image,
            {"preprocess_real[1-of-2]", "predict_real[1-of-2]"},
            remove_added_image,
        ),
        "an image removed": Branch(
            "trained",
            remove_real_image,
            {"preprocess_real[1-of-2]", "predict_real[1-of-2]"},
            put_back(REMOVED_REAL),
        ),
        "an image edited": Branch(
            "trained",
            edit_real_image,
            {"preprocess_real[1-of-2]", "predict_real[1-of-2]"},
            put_back(EDITED_REAL),
        ),
        "an image relabelled": HeldBy(
            "tests/workflow/test_reruns.py::test_a_relabelled_real_image_repredicts_its_shard"
        ),
    },
    "evaluation.check": {"any": HeldBy(THE_KEY_TEST)},
    "figures.charts": {"with shards, and without": HeldBy(THE_KEY_TEST)},
    "figures.contact_sheets": {"with shards, and without": HeldBy(THE_KEY_TEST)},
    "store.enabled": {"any": HeldBy(THE_KEY_TEST)},
    "store.path": {"any": HeldBy(THE_KEY_TEST)},
    "store.across_machines": {"any": HeldBy(THE_KEY_TEST)},
}
CHECKED_BRANCHES = [
    (name, branch)
    for name, branches in NOTE_BRANCHES.items()
    for branch, how in branches.items()
    if isinstance(how, Branch)
]


def test_every_rerun_note_lists_its_branches() -> None:
    noted = {name for name, effect in EFFECTS.items() if effect.note}
    assert set(NOTE_BRANCHES) == noted, (
        f"notes without their branches here: {sorted(noted - set(NOTE_BRANCHES))}; "
        f"listed without a note: {sorted(set(NOTE_BRANCHES) - noted)}"
    )
    for name, branches in NOTE_BRANCHES.items():
        for branch, how in branches.items():
            if isinstance(how, HeldBy):
                path, _, function = how.test.partition("::")
                tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
                defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
                assert function in defined, f"{name} ({branch}): no test {how.test}"


@pytest.mark.parametrize(
    ("name", "branch"), CHECKED_BRANCHES, ids=[f"{n}: {b}" for n, b in CHECKED_BRANCHES]
)
def test_each_branch_of_a_note_reruns_what_it_says(
    request: pytest.FixtureRequest, name: str, branch: str
) -> None:
    how = NOTE_BRANCHES[name][branch]
    assert isinstance(how, Branch)
    finished = request.getfixturevalue(STATES[how.state])
    path = finished / "config" / "config.yaml"
    original = path.read_bytes()
    config = yaml.safe_load(original)
    try:
        how.change(finished, config)
        write_config(finished, config)
        planned = planned_jobs(finished)
    finally:
        path.write_bytes(original)
        if how.undo is not None:
            how.undo(finished)
    assert planned == how.expected, (
        f"{name}, {branch}: planned {sorted(planned)}; the note says {sorted(how.expected)}: "
        f"unexpected {sorted(planned - how.expected)}, missing {sorted(how.expected - planned)}"
    )


# ---- cases the schema's per-key declarations do not cover


def glorot_with_two_labels(config: dict[str, Any]) -> None:
    """Two other labels, and no real set (whose labels they are not)."""
    config["classifier"].update(weights="glorot", labels=["a", "b"])
    for prompt in config["prompts"].values():
        prompt.pop("label", None)
    config["evaluation"]["real"] = None


CONFIG_CASES = {
    "glorot, label count": (glorot_with_two_labels, NEW_WEIGHTS | FROM_PREDICT),
    "store off": (setter("store", "enabled", value=False), set()),
}


def test_a_relabelled_real_image_repredicts_its_shard(finished: Path) -> None:
    """The small real set as a sheet in its folder re-runs nothing (the same paths, the same
    ids); a label changed in the sheet, or emptied (predict only), re-runs predict_real of
    that image's shard only: its tensors stay."""
    sheet = finished / "real" / "real.tsv"
    rows = [f"{path}\t{path.split('/')[0]}" for path in SMALL_REAL_FILES]
    as_sheet = setter("evaluation", "real", value="real/real.tsv")
    try:
        sheet.write_text("path\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
        with config_change(finished, as_sheet):
            assert planned_jobs(finished) == set()
            relabelled = [row.replace("ship/a.png\tship", "ship/a.png\tdog") for row in rows]
            sheet.write_text("path\tlabel\n" + "\n".join(relabelled) + "\n", encoding="utf-8")
            assert planned_jobs(finished) == {"predict_real[2-of-2]"}
            unlabelled = [row.replace("dog/b.png\tdog", "dog/b.png\t") for row in rows]
            sheet.write_text("path\tlabel\n" + "\n".join(unlabelled) + "\n", encoding="utf-8")
            assert planned_jobs(finished) == {"predict_real[1-of-2]"}
    finally:
        sheet.unlink(missing_ok=True)


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_change_reruns_exactly(finished: Path, case: str) -> None:
    change, expected = CONFIG_CASES[case]
    with config_change(finished, change):
        assert planned_jobs(finished) == expected


def test_added_prompt_runs_only_its_jobs(finished: Path) -> None:
    new_prompt = {"text": "A red bicycle", "n_images": 1}
    with config_change(finished, setter("prompts", "bike", value=new_prompt)):
        assert planned_jobs(finished) == chain_from("generate", ["bike"])


def without(prompt_id: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        del config["prompts"][prompt_id]

    return change


EVERY_PREDICTION = {
    "one job per prompt": chain_from("predict", FOUR_PROMPTS),
    "2 shards": chain_from("predict", [SHARD_1, SHARD_2]),
}
TWO = "2 shards"
REMAINING_PREDICTIONS = chain_from("predict", [p for p in FOUR_PROMPTS if p != "harbor"])
# the README's "More cases": prompt edits, as the real dry runs plan them, in each layout
PROMPT_CASES = {
    "an unlabelled prompt's text (bike, in a shard with labelled ones)": (
        setter("prompts", "bike", "text", value="A blue bicycle"),
        {
            "one job per prompt": chain_from("generate", ["bike"]),
            "2 shards": chain_from("generate", [SHARD_2]),
        },
    ),
    "an unlabelled prompt added (boat, to tree's shard)": (
        setter("prompts", "boat", value={"text": "A small boat", "n_images": 1}),
        {
            "one job per prompt": chain_from("generate", ["boat"]),
            "2 shards": chain_from("generate", [SHARD_1]),
        },
    ),
    "an unlabelled prompt removed from a shard of others (bike)": (
        without("bike"),
        {"one job per prompt": set(), "2 shards": chain_from("generate", [SHARD_2])},
    ),
    "an unlabelled prompt removed, alone in its shard (tree)": (
        without("tree"),
        {"one job per prompt": set(), "2 shards": set()},
    ),
    "a labelled prompt removed (harbor)": (
        without("harbor"),
        {
            "one job per prompt": TRAINING_JOBS | REMAINING_PREDICTIONS,
            "2 shards": chain_from("generate", [SHARD_2]) | TRAINING_JOBS | EVERY_PREDICTION[TWO],
        },
    ),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", PROMPT_CASES)
def test_prompt_edits_rerun_their_shard(
    request: pytest.FixtureRequest, layout: str, case: str
) -> None:
    finished = finished_layout(request, layout)
    change, expected = PROMPT_CASES[case]
    with config_change(finished, change):
        assert planned_jobs(finished) == expected[layout]


def test_removed_prompt_recomputes_no_image_and_leaves_the_summary(finished: Path) -> None:
    """harbor is labelled: without it the classifier is trained again (on city's images),
    and the predictions follow; no image, tensor or other prompt's step runs again."""

    def remove_harbor(config: dict[str, Any]) -> None:
        del config["prompts"]["harbor"]

    with config_change(finished, remove_harbor):
        assert planned_jobs(finished) == TRAINING_JOBS | chain_from("predict", ["city"])
        run_snakemake(finished)
        summary = (finished / "results" / "summary.csv").read_text()
        assert "city_000" in summary and "harbor" not in summary
    run_snakemake(finished)  # back to the full summary for the other cases
    assert "harbor_000" in (finished / "results" / "summary.csv").read_text()


# training (the small run trains its classifier): its plan holds the code of the steps that
# make its tensors, and new weights re-run every prediction
TRAIN = TRAINING_JOBS | FROM_PREDICT
CODE_CASES = {
    "scripts/generate.py": FROM_GENERATE | TRAIN,
    "sdcnn/generate/pipeline.py": FROM_GENERATE | TRAIN,
    "scripts/preprocess.py": FROM_PREPROCESS | TRAIN,
    # the real images' preprocess_real runs its functions too
    "sdcnn/preprocess/image_to_tensor.py": FROM_PREPROCESS | TRAIN | REAL_CHAIN,
    "scripts/preprocess_real.py": REAL_CHAIN,
    "sdcnn/evaluate/real_images.py": REAL_CHAIN,
    "scripts/predict_real.py": REAL_PREDICTIONS,
    "sdcnn/evaluate/real_prediction.py": REAL_PREDICTIONS,
    # the figures draw the contact sheets of the prompts it flags first
    "scripts/diversity.py": pictures("diversity", "figures"),
    "sdcnn/evaluate/diversity.py": pictures("diversity", "figures"),
    "sdcnn/evaluate/scores.py": set(),  # the summary's: aggregates only
    "scripts/predict.py": FROM_PREDICT,
    "sdcnn/classify/cnn.py": TRAIN,  # the network the predict step runs and training trains
    "sdcnn/classify/weights.py": TRAIN,
    "scripts/train_classifier.py": TRAIN,
    "sdcnn/classify/training.py": TRAIN,
    "sdcnn/demo/model.py": set(),  # builds the random test pipeline: no step imports it
    "sdcnn/workflow/codedeps.py": set(),  # used by the Snakefile only, by no step
    "sdcnn/core/progress.py": FROM_GENERATE | TRAIN,
    "sdcnn/reporting/figures.py": pictures("figures") | TRAIN,  # training draws its curve
    "scripts/figures.py": pictures("figures"),
    "scripts/dataset.py": pictures("dataset"),
    "sdcnn/export/webdataset_tars.py": pictures("dataset"),
    "sdcnn/reporting/pages.py": set(),  # the summary and run-info pages: aggregates only
}


@pytest.mark.parametrize("relative", CODE_CASES)
def test_code_change_reruns_that_step_and_what_follows(finished: Path, relative: str) -> None:
    with code_change(finished, relative):
        assert planned_jobs(finished) == CODE_CASES[relative]


def installed_torch_metadata(folder: Path, version: str) -> dict[str, str]:
    """An environment where the installed torch distribution says it is ``version``: a
    dist-info folder first on the path, as a torch upgrade leaves one (the metadata
    only: Snakemake's parse reads versions, it imports no torch)."""
    dist_info = folder / f"torch-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


# the labelled images' runtime (sdcnn.generate.pipeline.planned_runtime) is in generate's params
# and in the training plan: new images on another device or library version re-train,
# though train_classifier reads its tensors as ancient inputs
RUNTIME_CHANGES = {
    "a GPU requested by a profile (device, dtype)": ("--set-resources", "generate:gpu=1"),
    "a torch upgrade (versions)": (),
}


@pytest.mark.parametrize("change", RUNTIME_CHANGES)
def test_a_labelled_images_runtime_change_regenerates_and_retrains(
    finished: Path, tmp_path: Path, change: str
) -> None:
    arguments = RUNTIME_CHANGES[change]
    env = None if arguments else installed_torch_metadata(tmp_path / "site", "99.0.0")
    assert planned_jobs(finished, *arguments, env=env) == FROM_GENERATE | TRAIN


def test_replacing_a_local_models_files_regenerates_and_retrains(
    small_run: Path, tmp_path: Path
) -> None:
    """A local model's identity is its files' state (sizes, times), not its name: files
    replaced in place re-run generation and training, without a config change."""
    workdir = tmp_path / "workflow"
    shutil.copytree(small_run, workdir, symlinks=True)
    config = copy.deepcopy(SMALL_CONFIG)
    copy_of_the_demo_model(workdir, config)
    write_config(workdir, config)
    run_snakemake(workdir)  # the same weights as the demo's: images from the store
    assert planned_jobs(workdir) == set()
    scheduler = workdir / "models" / "local" / "scheduler" / "scheduler_config.json"
    scheduler.write_bytes(scheduler.read_bytes())  # a new file of the same name and size
    stat = scheduler.stat()
    os.utime(scheduler, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert planned_jobs(workdir) == FROM_GENERATE | TRAIN


def test_nothing_changed_means_nothing_to_do(finished: Path) -> None:
    result = run_snakemake(finished, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


# ---- what counts as a code change: what the code does, not its comments
# (sdcnn/workflow/codedeps.py)

# they all import sdcnn.workflow.step (the small run trains its weights: no init_weights job)
EVERY_STEP = {"training_plan", "train_classifier"} | FROM_GENERATE | REAL_CHAIN
NOT_CODE = {
    "a comment": lambda code: code + COMMENT_EDIT,
    "a docstring": lambda code: code.replace(b'"""', b'"""Reworded. ', 1),
    "blank lines": lambda code: code.replace(b"\n\n", b"\n\n\n\n", 1),
}


def changed_code_files(dry_run_output: str) -> set[str]:
    """The files whose entry in the ``code`` param differs, read from the reasons that
    ``snakemake -n`` prints ("Params have changed ...: before: {...} now: {...}")."""
    changed = set()
    for before, now in re.findall(r"before: (\{[^}]*\}) now: (\{[^}]*\})", dry_run_output):
        old, new = ast.literal_eval(before), ast.literal_eval(now)
        changed |= {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    return changed


@pytest.mark.parametrize("edit", NOT_CODE)
def test_comment_or_docstring_in_a_module_reruns_nothing(finished: Path, edit: str) -> None:
    with code_change(finished, "sdcnn/workflow/step.py", NOT_CODE[edit]):
        assert planned_jobs(finished) == set()


def test_code_change_in_a_module_reruns_its_dependants_and_names_it(finished: Path) -> None:
    with code_change(finished, "sdcnn/workflow/step.py"):
        plan, result = dry_run(finished)
    output = result.stdout
    assert job_names(plan) == EVERY_STEP
    assert "Params have changed since last execution" in output
    assert changed_code_files(output) == {"sdcnn/workflow/step.py"}


def test_comment_in_a_script_still_reruns_its_step(finished: Path) -> None:
    """Snakemake's own trigger for a script: rule compares the script's mtime with the
    outputs' (snakemake/jobs.py, outputs_older_than_script_or_notebook), not its text."""
    with code_change(finished, "scripts/predict.py", lambda code: code + COMMENT_EDIT):
        plan, result = dry_run(finished)
    output = result.stdout
    assert job_names(plan) == FROM_PREDICT
    assert "Code has changed since last execution" in output
    assert changed_code_files(output) == set()
