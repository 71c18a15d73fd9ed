"""Every text-to-image family (tests/support/families.py) through the real workflow, at its
native size: the images, tensors, predictions and summary of a small run each; a scheduler
of the other kind refused before any job; the negative prompt of PixArt-Σ and FLUX.1.

The generation settings are the schema's defaults but for what keeps a run cheap (two
steps, two prompts of two images, one shard) and the size, left null: the model's native
size; the scheduler is one that fits the family (``SCHEDULER``), and FLUX.1-dev runs true
classifier-free guidance. One prompt has a negative prompt, the other none, in every
family's run.
"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sdcnn.core.shards import shard_name
from tests.support.families import FAMILIES, FAMILY_FACTS
from tests.support.runs import run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.pipeline

# one prompt with a negative prompt (passed), one without (an empty one is left out)
PROMPTS: dict[str, dict[str, Any]] = {
    "city": {"text": "A futuristic city at sunset", "negative_prompt": "blurry", "n_images": 2},
    "harbor": {"text": "A quiet fishing harbor at dawn", "n_images": 2},
}
# generation.scheduler per family: ddim where it fits; flow_euler for SD 3 (the flow scheduler
# a user picks); the model's own (the schema's default) for FLUX.1 and Sana
SCHEDULER: dict[str, str] = {
    "sd1": "ddim",
    "sdxl": "ddim",
    "sdxl-turbo": "ddim",
    "sd3": "flow_euler",
    "flux-schnell": "default",
    "flux-dev": "default",
    "pixart-sigma": "ddim",
    "sana": "default",
}
# FLUX.1 uses a negative prompt only with true classifier-free guidance: dev runs it
# (a second transformer pass per step), schnell keeps the default and warns
TRUE_CFG_SCALE: dict[str, float] = {"flux-dev": 2.0}
SHARD = shard_name(0, 1)  # one shard: one generate job, one pipeline load, a run
REPORT_FAMILY = "pixart-sigma"  # the non-SD family whose run makes a report


@dataclass(frozen=True)
class FamilyRun:
    """A finished run of one family: where it ran, how long it took."""

    name: str
    workdir: Path
    seconds: float

    @property
    def results(self) -> Path:
        """The run's results/ folder."""
        return self.workdir / "results"

    def folder(self, kind: str, prompt_id: str) -> Path:
        """A prompt's folder of ``kind`` (images, tensors, ...) in the run's one shard."""
        return self.results / kind / SHARD / prompt_id

    def predictions(self, prompt_id: str) -> dict[str, Any]:
        """A prompt's prediction document."""
        path = self.results / "predictions" / SHARD / f"{prompt_id}.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def generate_log(self) -> str:
        """The log of the run's one generate job."""
        return (self.results / "logs" / "generate" / f"{SHARD}.log").read_text(encoding="utf-8")


def family_config(name: str, folder: Path, **generation: Any) -> dict[str, Any]:
    """The run's config for family ``name`` whose tiny pipeline is in ``folder``: schema
    defaults but two steps, the model's native size, ``generation``'s keys."""
    settings = {
        "steps": 2,
        "height": None,
        "width": None,
        "scheduler": SCHEDULER[name],
        **({"true_cfg_scale": TRUE_CFG_SCALE[name]} if name in TRUE_CFG_SCALE else {}),
        **generation,
    }
    return {
        "prompts": PROMPTS,
        "shards": 1,
        "generation": settings,
        "model": {"source": str(folder)},
        "preprocess": {"size": 32},
        "classifier": {"weights": "glorot"},
    }


class FamilyRuns:
    """The finished run of each family, each run the first time it is asked for."""

    def __init__(self, folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
        self.folders, self.tmp_path_factory = folders, tmp_path_factory
        self.runs: dict[str, FamilyRun] = {}

    def __getitem__(self, name: str) -> FamilyRun:
        if name not in self.runs:
            config = family_config(name, self.folders[name])
            workdir = copy_workflow(self.tmp_path_factory.mktemp(f"run-{name}"), config)
            started = time.perf_counter()
            run_snakemake(workdir)
            seconds = time.perf_counter() - started
            print(f"{name}: the run took {seconds:.1f} s")
            self.runs[name] = FamilyRun(name, workdir, seconds)
        return self.runs[name]


@pytest.fixture(scope="module")
def family_runs(
    family_folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> FamilyRuns:
    """The module's runs of the families (``family_config``), shared by its tests."""
    return FamilyRuns(family_folders, tmp_path_factory)


@pytest.fixture(params=FAMILIES)
def family_run(request: pytest.FixtureRequest, family_runs: FamilyRuns) -> FamilyRun:
    """A full run of the workflow on one family's tiny pipeline."""
    return family_runs[request.param]


def stems(prompt_id: str) -> list[str]:
    """The image ids of a prompt, in order."""
    return [f"{prompt_id}_{i:03d}" for i in range(PROMPTS[prompt_id]["n_images"])]


def has_safety_checker(folder: Path) -> bool:
    """Whether a pipeline folder has a safety checker (its model_index.json lists one)."""
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return index.get("safety_checker", [None])[0] is not None


def test_each_family_draws_at_its_native_size(
    family_run: FamilyRun, family_folders: dict[str, Path]
) -> None:
    side = FAMILY_FACTS[family_run.name]["native_size"]
    checked = has_safety_checker(family_folders[family_run.name])
    for prompt_id, prompt in PROMPTS.items():
        folder = family_run.folder("images", prompt_id)
        assert sorted(path.stem for path in folder.glob("*.png")) == stems(prompt_id)
        for stem in stems(prompt_id):
            with Image.open(folder / f"{stem}.png") as image:
                assert image.size == (side, side)
                assert image.mode == "RGB"
                text = dict(image.text)
            assert text["prompt"] == prompt["text"]
            assert text["negative_prompt"] == prompt.get("negative_prompt", "")
            assert text["height"] == text["width"] == str(side)
            assert text["scheduler"] == SCHEDULER[family_run.name]
            assert (text["safety_checker"] != "unchecked") == checked


def test_each_family_records_its_model_in_every_png(
    family_run: FamilyRun, family_folders: dict[str, Path]
) -> None:
    for path in (family_run.results / "images").rglob("*.png"):
        with Image.open(path) as image:
            assert image.text["model"] == str(family_folders[family_run.name]), path


def test_each_family_runs_to_the_summary(
    family_run: FamilyRun, family_folders: dict[str, Path]
) -> None:
    checked = has_safety_checker(family_folders[family_run.name])
    for prompt_id in PROMPTS:
        for stem in stems(prompt_id):
            assert (family_run.folder("tensors", prompt_id) / f"{stem}.npy").is_file()
        document = family_run.predictions(prompt_id)
        assert [image["image_id"] for image in document["images"]] == stems(prompt_id)
        # a verdict only from a safety checker (sd1's tiny folder is saved without one)
        verdicts = [image["safety_flagged"] for image in document["images"]]
        assert [verdict is not None for verdict in verdicts] == [checked, checked]
    with open(family_run.results / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image_id"] for row in rows] == [s for p in PROMPTS for s in stems(p)]
    assert {row["safety_flagged"] == "" for row in rows} == {not checked}


def test_each_family_logs_its_pipeline_and_native_size(family_run: FamilyRun) -> None:
    facts, log = FAMILY_FACTS[family_run.name], family_run.generate_log()
    side = facts["native_size"]
    assert f"the model's native size: {side} x {side}" in log, log
    assert f"loaded {facts['pipeline']} (local)" in log, log
    assert "2 prompts, 4 images: 0 reused from the image store, 4 generated" in log, log


# ---- the negative prompt (PixArt-Σ, FLUX.1)


def test_flux_warns_of_a_negative_prompt_it_does_not_use(family_runs: FamilyRuns) -> None:
    """FLUX.1-schnell at true_cfg_scale 1: the prompt with a negative prompt gets a warning,
    the one without none (its empty negative prompt is not passed); dev at 2 uses it."""
    warning = "FluxPipeline uses a negative prompt only with generation.true_cfg_scale > 1"
    schnell = family_runs["flux-schnell"].generate_log()
    assert f"city: {warning}" in schnell, schnell
    assert f"harbor: {warning}" not in schnell, schnell
    dev = family_runs["flux-dev"].generate_log()
    assert warning not in dev, dev


@pytest.mark.parametrize("name", ["pixart-sigma", "flux-schnell", "flux-dev"])
def test_a_negative_prompt_and_none_both_draw(name: str, family_runs: FamilyRuns) -> None:
    """Both prompts' images exist: a negative prompt passed, an empty one left out."""
    run = family_runs[name]
    for prompt_id in PROMPTS:
        assert sorted(p.stem for p in run.folder("images", prompt_id).glob("*.png")) == stems(
            prompt_id
        )
    assert "Traceback" not in run.generate_log()


# ---- the report of a non-SD family


def test_the_report_of_a_non_sd_family_has_no_system_message(
    family_runs: FamilyRuns, tmp_path: Path
) -> None:
    run = family_runs[REPORT_FAMILY]
    report = tmp_path / "report.html"
    run_snakemake(run.workdir, "--report", str(report))
    page = report.read_text(encoding="utf-8")
    assert "System Message" not in page and "system-message" not in page
    for prompt in PROMPTS.values():
        assert prompt["text"] in page


# ---- schedulers: the kind of the model's own


def refused_run(workdir: Path) -> str:
    """Run snakemake, expect it to fail; its console output."""
    result = run_snakemake(workdir, check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output


def choices_named(output: str) -> list[str]:
    """The schedulers a refusal names as fitting."""
    match = re.search(r"Choices that fit: ([a-z_]+(?:, [a-z_]+)*)", output)
    assert match, output
    return match.group(1).split(", ")


# the choices that fit each flow-matching family (README's table): FLUX.1 always passes
# custom sigmas, which flow_heun cannot take
FITTING = {"sd3": ["default", "flow_euler", "flow_heun"], "flux-schnell": ["default", "flow_euler"]}
# (name, scheduler, why): a scheduler that does not fit a flow-matching model
REFUSED = [
    ("sd3", "ddim", "'ddim' is an ε/v-prediction scheduler; the model is flow-matching"),
    ("flux-schnell", "ddim", "'ddim' is an ε/v-prediction scheduler; the model is flow-matching"),
    ("flux-schnell", "flow_heun", "FlowMatchHeunDiscreteScheduler takes no custom sigmas"),
]


@pytest.mark.parametrize(
    "name, scheduler, why", REFUSED, ids=[f"{name}-{scheduler}" for name, scheduler, _ in REFUSED]
)
def test_a_scheduler_of_the_other_kind_stops_the_run_before_any_job(
    name: str, scheduler: str, why: str, family_folders: dict[str, Path], tmp_path: Path
) -> None:
    config = family_config(name, family_folders[name], scheduler=scheduler)
    workdir = copy_workflow(tmp_path / "run", config)
    output = refused_run(workdir)
    message = f"config key generation.scheduler: '{scheduler}' does not fit this model"
    assert output.count(message) == 1, output
    assert "whose scheduler is FlowMatchEulerDiscreteScheduler" in output, output
    assert why in output, output
    assert {"default", "flow_euler"} <= set(choices_named(output)), output
    assert scheduler not in choices_named(output), output
    assert not (workdir / "results").exists()  # no job ran, no image was written


@pytest.mark.parametrize(
    "name, scheduler",
    [
        ("sd3", "ddim"),
        ("flux-schnell", "ddim"),
        ("flux-schnell", "flow_heun"),
    ],
)
def test_the_refusal_names_exactly_the_schedulers_that_fit(
    name: str, scheduler: str, family_folders: dict[str, Path], tmp_path: Path
) -> None:
    config = family_config(name, family_folders[name], scheduler=scheduler)
    workdir = copy_workflow(tmp_path / "run", config)
    result = run_snakemake(workdir, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "config key generation.scheduler" in output, output
    assert choices_named(output) == FITTING[name]
