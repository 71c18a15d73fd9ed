"""The image store in real runs: nothing computed twice, outputs unchanged by it, kill-safe."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import copy_workflow, write_config

pytestmark = pytest.mark.pipeline


def generation_counts(workdir: Path, prompt_id: str) -> tuple[int, int]:
    """(reused, generated) from the last summary line of a prompt's generate log."""
    log = (workdir / "results" / "logs" / "generate" / f"{prompt_id}.log").read_text()
    matches = re.findall(r"(\d+) reused from the image store, (\d+) generated", log)
    assert matches, f"no summary line in the generate log:\n{log}"
    reused, generated = matches[-1]
    return int(reused), int(generated)


def edit_config(workdir: Path, **generation: object) -> None:
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["generation"].update(generation)
    write_config(workdir, config)


@pytest.fixture()
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "workflow"
    shutil.copytree(small_run, workdir, symlinks=True)
    return workdir


def test_switching_back_reuses_every_image_and_changes_no_output(
    small_run: Path, run_copy: Path
) -> None:
    edit_config(run_copy, steps=3)
    run_snakemake(run_copy, "--until", "generate")  # the store gains the 3-step images
    assert generation_counts(run_copy, "city") == (0, 3)
    edit_config(run_copy, steps=SMALL_CONFIG["generation"]["steps"])
    run_snakemake(run_copy)
    assert generation_counts(run_copy, "city") == (3, 0)
    assert generation_counts(run_copy, "harbor") == (2, 0)
    # images taken from the store give exactly the bytes a fresh computation gave
    assert result_files(run_copy) == result_files(small_run)


def test_one_more_image_computes_only_that_image(run_copy: Path) -> None:
    config = yaml.safe_load((run_copy / "config" / "config.yaml").read_text())
    config["prompts"]["city"]["n_images"] = 4
    write_config(run_copy, config)
    run_snakemake(run_copy, "--until", "generate")  # what follows is other tests' concern
    assert generation_counts(run_copy, "city") == (3, 1)
    assert len(list((run_copy / "results" / "images" / "city").glob("*.png"))) == 4


def test_batches_are_reused_whole(run_copy: Path) -> None:
    """Images made two per pipeline call are reused only where the whole call is known."""
    edit_config(run_copy, batch_size=2)
    run_snakemake(run_copy, "--until", "generate")
    assert generation_counts(run_copy, "city") == (0, 3)  # calls [0, 1] and [2]
    config = yaml.safe_load((run_copy / "config" / "config.yaml").read_text())
    config["prompts"]["city"]["n_images"] = 4
    write_config(run_copy, config)
    run_snakemake(run_copy, "--until", "generate")
    assert generation_counts(run_copy, "city") == (2, 2)  # [0, 1] reused, [2, 3] is new
    with Image.open(run_copy / "results" / "images" / "city" / "city_003.png") as image:
        assert image.text["batch_size"] == "2"


KILL_CONFIG = {
    "prompts": {"city": {"text": "A futuristic city at sunset", "n_images": 4}},
    # slow enough (about a second an image with the demo model) to be killed between two
    "generation": {"steps": 20, "height": 128, "width": 128},
    "preprocess": {"size": 32},
    "classifier": {"labels": ["cat", "dog"]},
}


def store_entries(workdir: Path) -> dict[str, int]:
    """Finished store entries (their JSON record) -> mtime in ns."""
    return {
        p.name: p.stat().st_mtime_ns for p in (workdir / ".image-store").glob("images/*/*.json")
    }


def test_killed_run_rerun_regenerates_only_unfinished_images(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "workflow", KILL_CONFIG)
    command = [sys.executable, "-m", "snakemake", "--cores", "2"]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while len(store_entries(workdir)) < 2:
            assert process.poll() is None, "the run ended before it could be killed mid-batch"
            assert time.monotonic() < deadline, "no image was finished in 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # snakemake and its jobs, all at once
        process.wait()
    finished_before_kill = store_entries(workdir)
    assert 2 <= len(finished_before_kill) < 4, "the kill did not land mid-batch"
    # nothing half-written under its final name: the images folder appears only when complete
    assert not (workdir / "results" / "images" / "city").exists()

    # the README's run command again (`make run`): the killed run's lock goes first
    unlock = subprocess.run(
        [sys.executable, "-m", "sdcnn.workflow.locks"], cwd=workdir, capture_output=True, text=True
    )
    assert "removed" in unlock.stdout and "has ended" in unlock.stdout, unlock.stdout
    run_snakemake(workdir)

    reused, generated = generation_counts(workdir, "city")
    assert (reused, generated) == (len(finished_before_kill), 4 - len(finished_before_kill))
    after = store_entries(workdir)
    assert {name: after[name] for name in finished_before_kill} == finished_before_kill
    images = sorted((workdir / "results" / "images" / "city").glob("*.png"))
    assert [p.name for p in images] == [f"city_{i:03d}.png" for i in range(4)]
    for path in images:
        with Image.open(path) as image:
            image.load()  # a truncated file would raise here
            assert np.asarray(image).shape == (128, 128, 3)
    leftovers = [p.name for p in (workdir / "results" / "images").iterdir() if p.name != "city"]
    assert leftovers == []
    assert not list((workdir / ".snakemake" / "locks").glob("*.lock"))
    assert (workdir / "results" / "manifest.json").is_file()
