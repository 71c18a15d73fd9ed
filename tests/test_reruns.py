"""Changing the config or the code re-runs exactly the affected jobs, and nothing else.

Each case edits a copy of a finished run (config or code), asks ``snakemake -n``
which jobs it would run, compares with the expected set, and restores the edit.
Aggregates (summary, manifest, all, and later report rules) may always run.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SMALL_CONFIG, run_snakemake, write_config

pytestmark = pytest.mark.pipeline

PROMPT_IDS = list(SMALL_CONFIG["prompts"])
# the per-prompt chain, in order: a change at one stage re-runs it and every later stage,
# and then the prompt's pictures for people (probability charts and contact sheet)
CHAIN = ["generate", "preprocess", "predict"]
PICTURES = ["figures"]
AGGREGATES = {"summary", "manifest", "all", "summary_page", "run_info"}


def chain_from(stage: str, prompts: Iterable[str]) -> set[str]:
    rules = CHAIN[CHAIN.index(stage) :] + PICTURES
    return {f"{rule}[{p}]" for rule in rules for p in prompts}


def pictures(*rules: str) -> set[str]:
    return {f"{rule}[{p}]" for rule in rules for p in PROMPT_IDS}


def planned_jobs(workdir: Path, output: str | None = None) -> set[str]:
    """The jobs ``snakemake -n`` would run (or, given its ``output``, planned), as ``rule``
    or ``rule[prompt]``, aggregates left out."""
    if output is None:
        output = run_snakemake(workdir, "--dry-run").stdout
    jobs, current = [], None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            current = match.group(1)
            jobs.append(current)
        elif current and (match := re.match(r"^\s+wildcards: prompt=(\S+)$", line)):
            jobs[-1] = f"{current}[{match.group(1)}]"
    return {job for job in jobs if job.split("[")[0] not in AGGREGATES}


@pytest.fixture(scope="module")
def finished(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the finished small run (results, store and Snakemake's records)."""
    workdir = tmp_path_factory.mktemp("reruns") / "workflow"
    shutil.copytree(small_run, workdir, symlinks=True)
    assert planned_jobs(workdir) == set(), "the copied run should be complete"
    return workdir


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
CONFIG_CASES = {
    # one prompt's own settings: only that prompt's chain
    "prompt text": (setter("prompts", "city", "text", value="A city at night"), CITY),
    "negative prompt": (setter("prompts", "city", "negative_prompt", value="fog"), CITY),
    "image count": (setter("prompts", "harbor", "n_images", value=3), HARBOR),
    # generation settings: every generate and what follows
    "steps": (setter("generation", "steps", value=3), FROM_GENERATE),
    "guidance": (setter("generation", "guidance_scale", value=5.0), FROM_GENERATE),
    "height": (setter("generation", "height", value=72), FROM_GENERATE),
    "width": (setter("generation", "width", value=48), FROM_GENERATE),
    "scheduler": (setter("generation", "scheduler", value="euler"), FROM_GENERATE),
    "base seed": (setter("generation", "base_seed", value=8), FROM_GENERATE),
    "demo model": (setter("model", "demo_seed", value=1), {"build_demo_model"} | FROM_GENERATE),
    # preprocessing: preprocess and predict (a new size or channel count also needs new
    # weights, whose shapes follow them)
    "interpolation": (setter("preprocess", "interpolation", value="linear"), FROM_PREPROCESS),
    "size": (setter("preprocess", "size", value=24), NEW_WEIGHTS | FROM_PREPROCESS),
    "grayscale": (setter("preprocess", "grayscale", value=False), NEW_WEIGHTS | FROM_PREPROCESS),
    # classifier: predict only (plus new weights when their shape or seed changes)
    "label names": (setter("classifier", "labels", value=["a", "b", "c"]), FROM_PREDICT),
    "label count": (setter("classifier", "labels", value=["a", "b"]), NEW_WEIGHTS | FROM_PREDICT),
    "weights seed": (setter("classifier", "weights_seed", value=4), NEW_WEIGHTS | FROM_PREDICT),
    # the image store never changes an output
    "store off": (setter("store", "enabled", value=False), set()),
    "store path": (setter("store", "path", value="elsewhere"), set()),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_change_reruns_exactly(finished: Path, case: str) -> None:
    change, expected = CONFIG_CASES[case]
    with config_change(finished, change):
        assert planned_jobs(finished) == expected


def test_own_weights_file_reruns_predict_only(finished: Path) -> None:
    shutil.copy(finished / "results/weights/cnn.safetensors", finished / "my-weights.safetensors")
    with config_change(finished, setter("classifier", "weights", value="my-weights.safetensors")):
        assert planned_jobs(finished) == FROM_PREDICT


def test_local_model_folder_reruns_generation(finished: Path) -> None:
    shutil.copytree(finished / "results/models/demo", finished / "models/local")
    with config_change(finished, setter("model", "source", value="models/local")):
        assert planned_jobs(finished) == FROM_GENERATE


def test_added_prompt_runs_only_its_jobs(finished: Path) -> None:
    new_prompt = {"text": "A red bicycle", "n_images": 1}
    with config_change(finished, setter("prompts", "bike", value=new_prompt)):
        assert planned_jobs(finished) == chain_from("generate", ["bike"])


def test_removed_prompt_recomputes_nothing_and_leaves_the_summary(finished: Path) -> None:
    def remove_harbor(config: dict[str, Any]) -> None:
        del config["prompts"]["harbor"]

    with config_change(finished, remove_harbor):
        assert planned_jobs(finished) == set()
        run_snakemake(finished)
        summary = (finished / "results" / "summary.csv").read_text()
        assert "city_000" in summary and "harbor" not in summary
    run_snakemake(finished)  # back to the full summary for the other cases
    assert "harbor_000" in (finished / "results" / "summary.csv").read_text()


CODE_CASES = {
    "scripts/generate.py": FROM_GENERATE,
    "sdcnn/generation.py": FROM_GENERATE,
    "scripts/preprocess.py": FROM_PREPROCESS,
    "sdcnn/preprocessing.py": FROM_PREPROCESS,
    "scripts/predict.py": FROM_PREDICT,
    "sdcnn/cnn.py": FROM_PREDICT,
    "sdcnn/weights.py": NEW_WEIGHTS | FROM_PREDICT,
    "sdcnn/demo_model.py": {"build_demo_model"} | FROM_GENERATE,
    "sdcnn/codedeps.py": set(),  # used by the Snakefile only, by no step
    "sdcnn/progress.py": FROM_GENERATE,
    "sdcnn/plots.py": pictures(*PICTURES),
    "scripts/figures.py": pictures(*PICTURES),
    "sdcnn/pages.py": set(),  # the summary and run-info pages: aggregates only
}


@pytest.mark.parametrize("relative", CODE_CASES)
def test_code_change_reruns_that_step_and_what_follows(finished: Path, relative: str) -> None:
    with code_change(finished, relative):
        assert planned_jobs(finished) == CODE_CASES[relative]


def test_nothing_changed_means_nothing_to_do(finished: Path) -> None:
    result = run_snakemake(finished, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


# ---- what counts as a code change: what the code does, not its comments (sdcnn/codedeps.py)

EVERY_STEP = {"build_demo_model", "init_weights"} | FROM_GENERATE  # they all import sdcnn.step
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
    with code_change(finished, "sdcnn/step.py", NOT_CODE[edit]):
        assert planned_jobs(finished) == set()


def test_code_change_in_a_module_reruns_its_dependants_and_names_it(finished: Path) -> None:
    with code_change(finished, "sdcnn/step.py"):
        output = run_snakemake(finished, "--dry-run").stdout
    assert planned_jobs(finished, output) == EVERY_STEP
    assert "Params have changed since last execution" in output
    assert changed_code_files(output) == {"sdcnn/step.py"}


def test_comment_in_a_script_still_reruns_its_step(finished: Path) -> None:
    """Snakemake's own trigger for a script: rule compares the script's mtime with the
    outputs' (snakemake/jobs.py, outputs_older_than_script_or_notebook), not its text."""
    with code_change(finished, "scripts/predict.py", lambda code: code + COMMENT_EDIT):
        output = run_snakemake(finished, "--dry-run").stdout
    assert planned_jobs(finished, output) == FROM_PREDICT
    assert "Code has changed since last execution" in output
    assert changed_code_files(output) == set()
