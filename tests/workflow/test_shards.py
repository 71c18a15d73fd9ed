"""Sharded runs: a 40-prompt sheet in 4 shards (the ``sharded_run`` fixture), for real.

One job per shard and step, one pipeline load per generate job, outputs per prompt inside
the shard folders, the same bytes as an unsharded run, and re-runs as precise as before:
editing a prompt re-runs its shard and computes only its images; adding one touches only
its shard; changing the number of shards computes no image.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from sdcnn.core.shards import assign_shards, shard_index, shard_name
from tests.support.configs import (
    SHARDED_CONFIG,
    SHEET_PROMPTS,
    SMALL_CONFIG,
    sheet_rows,
    write_sheet,
)
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import write_config

pytestmark = pytest.mark.pipeline

ROWS = sheet_rows()
SHARDS = assign_shards([row["prompt_id"] for row in ROWS], SHARDED_CONFIG["shards"])
SHARD_OF = {prompt_id: shard for shard, members in SHARDS.items() for prompt_id in members}
PER_SHARD_RULES = ("generate", "preprocess", "predict", "figures", "dataset")


def planned(workdir: Path) -> dict[str, set[str]]:
    """rule -> the wildcards of its planned jobs (a dry run)."""
    output = run_snakemake(workdir, "--dry-run").stdout
    jobs: dict[str, set[str]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match.group(1)
            jobs.setdefault(rule, set())
        elif rule and (match := re.match(r"^\s+wildcards: shard=(\S+)$", line)):
            jobs[rule].add(match.group(1))
    return jobs


def shard_totals(workdir: Path) -> dict[str, tuple[int, int]]:
    """shard -> (reused, generated) of its last generate job, from its log."""
    totals = {}
    for log in sorted((workdir / "results" / "logs" / "generate").glob("*.log")):
        pattern = r"images: (\d+) reused from the image store, (\d+) generated"
        found = re.findall(pattern, log.read_text())
        if found:
            totals[log.stem] = tuple(map(int, found[-1]))
    return totals


@pytest.fixture()
def run_copy(sharded_run: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "workflow"
    shutil.copytree(sharded_run, workdir, symlinks=True)
    return workdir


def test_one_job_per_shard_and_step(sharded_run: Path) -> None:
    assert 1 < len(SHARDS) <= SHARDED_CONFIG["shards"]
    for rule in PER_SHARD_RULES:
        logs = sorted(p.stem for p in (sharded_run / "results" / "logs" / rule).glob("*.log"))
        assert logs == sorted(SHARDS), f"{rule} ran for {logs}, expected one job per shard"
    for shard in SHARDS:
        log = (sharded_run / "results" / "logs" / "generate" / f"{shard}.log").read_text()
        assert log.count("loaded StableDiffusionPipeline") == 1, f"{shard}: not one load"
        assert "pipeline loaded once" in log


def test_outputs_per_prompt_inside_their_shard(sharded_run: Path) -> None:
    results = sharded_run / "results"
    for row in ROWS:
        prompt_id, shard = row["prompt_id"], SHARD_OF[row["prompt_id"]]
        stems = [f"{prompt_id}_{i:03d}" for i in range(row["n_images"])]
        for kind, suffix in (
            ("images", ".png"),
            ("tensors", ".npy"),
            ("previews", ".png"),
            ("charts", ".png"),
        ):
            found = sorted(p.name for p in (results / kind / shard / prompt_id).iterdir())
            assert found == [stem + suffix for stem in stems], f"{kind} of {prompt_id}: {found}"
        prediction = json.loads((results / "predictions" / shard / f"{prompt_id}.json").read_text())
        assert prediction["prompt_id"] == prompt_id
        assert [image["image_id"] for image in prediction["images"]] == stems
        assert (results / "contact_sheets" / shard / f"{prompt_id}.png").is_file()


def test_summary_has_every_image_in_the_sheets_order(sharded_run: Path) -> None:
    with open(sharded_run / "results" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [f"{row['prompt_id']}_{i:03d}" for row in ROWS for i in range(row["n_images"])]
    assert [row["image_id"] for row in rows] == expected
    assert len({row["prompt_id"] for row in rows}) == SHEET_PROMPTS


def test_sharded_outputs_equal_the_unsharded_runs(small_run: Path, sharded_run: Path) -> None:
    """The small config's two prompts are the sheet's first rows: the same bytes, per prompt."""
    small, sharded = result_files(small_run), result_files(sharded_run)
    compared = 0
    for prompt_id in SMALL_CONFIG["prompts"]:
        shard = SHARD_OF[prompt_id]
        for kind in ("images", "tensors", "previews", "charts"):
            mine = {n: b for n, b in small.items() if n.startswith(f"{kind}/{prompt_id}/")}
            assert mine, f"the small run has no {kind} of {prompt_id}"
            for name, data in mine.items():
                other = name.replace(f"{kind}/{prompt_id}/", f"{kind}/{shard}/{prompt_id}/", 1)
                assert sharded.get(other) == data, f"{other} differs from {name}"
                compared += 1
        prediction = f"predictions/{shard}/{prompt_id}.json"
        unsharded = json.loads(small[f"predictions/{prompt_id}.json"])
        document = json.loads(sharded[prediction])
        for image in (*unsharded["images"], *document["images"]):
            image.pop("tensor")  # the path, which has the shard in it
        assert document == unsharded, f"{prediction} differs from the unsharded prediction"
    assert compared > 10


def test_second_invocation_has_nothing_to_do(sharded_run: Path) -> None:
    assert planned(sharded_run) == {}


def edit_sheet(workdir: Path, rows: list[dict]) -> None:
    write_sheet(workdir / "prompts.tsv", rows)


def test_editing_one_prompt_reruns_its_shard_and_computes_only_its_images(run_copy: Path) -> None:
    rows = [dict(row) for row in ROWS]
    edited = rows[5]
    edited["text"] = "an edited picture"
    edit_sheet(run_copy, rows)
    jobs = planned(run_copy)
    shard = SHARD_OF[edited["prompt_id"]]
    for rule in PER_SHARD_RULES:
        assert jobs.get(rule) == {shard}, f"{rule}: planned {jobs.get(rule)}, expected {shard}"
    run_snakemake(run_copy)
    members = len(SHARDS[shard])
    n_images = sum(row["n_images"] for row in rows if SHARD_OF[row["prompt_id"]] == shard)
    assert shard_totals(run_copy)[shard] == (n_images - edited["n_images"], edited["n_images"])
    summary = (run_copy / "results" / "summary.csv").read_text()
    assert summary.count("\n") - 1 == sum(row["n_images"] for row in rows)
    assert members > 1  # the case means something only if the shard holds other prompts


def test_adding_a_prompt_touches_only_its_shard(run_copy: Path) -> None:
    # a new, unlabelled prompt in the shard of a labelled one (city): that shard re-runs
    where = SHARD_OF["city"]
    prompt_id = next(
        f"added{i}"
        for i in range(1000)
        if shard_name(shard_index(f"added{i}", SHARDED_CONFIG["shards"]), SHARDED_CONFIG["shards"])
        == where
    )
    added = {
        "prompt_id": prompt_id,
        "text": "one more",
        "negative_prompt": "",
        "n_images": 2,
        "label": None,
    }
    edit_sheet(run_copy, [*ROWS, added])
    jobs = planned(run_copy)
    for rule in PER_SHARD_RULES:
        assert jobs.get(rule) == {where}, f"{rule}: planned {jobs.get(rule)}, expected {where}"
    # an unlabelled prompt trains nothing, even in a shard with labelled prompts
    assert "train_classifier" not in jobs, f"adding an unlabelled prompt retrains: {jobs}"


def test_changing_shards_computes_no_image(run_copy: Path) -> None:
    """shards' x-reruns-note: no image is computed again, and training gives the same weights."""
    weights = run_copy / "results" / "weights" / "trained.safetensors"
    trained_before = weights.read_bytes()
    write_config(run_copy, {**SHARDED_CONFIG, "shards": 3})
    run_snakemake(run_copy)
    assert weights.read_bytes() == trained_before, "other shards trained other weights"
    totals = shard_totals(run_copy)
    new_shards = assign_shards([row["prompt_id"] for row in ROWS], 3)
    assert set(new_shards) <= set(totals)
    assert all(totals[shard][1] == 0 for shard in new_shards), f"images computed: {totals}"
    with open(run_copy / "results" / "summary.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == sum(row["n_images"] for row in ROWS)
