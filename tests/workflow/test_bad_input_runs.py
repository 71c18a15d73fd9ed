"""Bad input through real Snakemake runs: one clear message, non-zero exit, nothing lost.

Config errors stop the run before any job (nothing under results/); a missing
model fails its first job within seconds; a corrupt file of a finished run fails
the step that reads it, names the file, and leaves no partial output; a prompt made
of shell syntax is only text.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sdcnn.classify.weights import CNNWeights, init_weights, save_weights
from tests.support.configs import SMALL_CONFIG, config_with
from tests.support.network import closed_port_url
from tests.support.runs import run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.pipeline

# A Hub id failure must come within seconds; only a retry loop could reach this.
MODEL_ERROR_TIMEOUT_S = 60


def failed_run(workdir: Path, *args: str, timeout: float = 300) -> str:
    """Run snakemake, expect it to fail; its console output."""
    result = run_snakemake(workdir, *args, check=False, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output


def leftovers(results: Path) -> list[str]:
    """Temporary files or folders of an atomic write that were not cleaned up."""
    return sorted(str(path) for path in results.rglob("*.tmp"))


# ---- config errors: caught before any job runs


def assert_refused_before_any_job(workdir: Path, output: str, message: str) -> None:
    assert message in output, output
    assert output.count(message) == 1, output  # one message, not one per rule or a dump
    assert "Failed validating" not in output  # no jsonschema dump
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            ("generation", "stepz"),
            3,
            "config key generation.stepz: unknown key (did you mean generation.steps?)",
        ),
        (("generation", "height"), 100, "config key generation.height: 100 is not a multiple of 8"),
        (("prompts", "../x"), {"text": "x"}, "config key prompts: the name '../x' is not allowed"),
        (("prompts", "city", "text"), "  ", "config key prompts.city.text: '  ' is empty or blank"),
        (("classifier", "backend"), "jax", "config key classifier.backend: 'jax' is not one of"),
        (
            ("model", "source"),
            "./models/nowhere",
            "config key model.source: model folder './models/nowhere' does not exist",
        ),
    ],
)
def test_bad_config_is_refused_before_any_job(
    tmp_path: Path, path: tuple[str, ...], value: Any, message: str
) -> None:
    workdir = copy_workflow(tmp_path / "run", config_with(path, value))
    assert_refused_before_any_job(workdir, failed_run(workdir), message)


def test_nested_command_line_values_work(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "run", SMALL_CONFIG)
    result = run_snakemake(
        workdir, "--dry-run", "--config", "generation={steps: 5, guidance_scale: 4.5}", "shards=2"
    )
    assert "rule generate:" in result.stdout and re.search(r"shard=\d-of-2", result.stdout)
    assert not (workdir / "results").exists()


def test_command_line_value_of_the_wrong_type_names_the_key(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "run", SMALL_CONFIG)
    output = failed_run(workdir, "--config", "generation={steps: many}")
    message = "config key generation.steps: 'many' (given with --config) is not an integer"
    assert_refused_before_any_job(workdir, output, message)


def test_duplicate_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "run", SMALL_CONFIG)
    config_file = workdir / "config" / "config.yaml"
    lines = config_file.read_text().splitlines()
    config_file.write_text("\n".join([*lines, "generation:", "  steps: 3", ""]))
    output = failed_run(workdir)
    message = (
        f"config file config/config.yaml: key generation is given twice (lines "
        f"{lines.index('generation:') + 1} and {len(lines) + 1}); "
        "YAML would silently keep only the last one"
    )
    assert_refused_before_any_job(workdir, output, message)


def test_duplicate_key_in_a_command_line_config_file_is_refused(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "run", SMALL_CONFIG)
    extra = tmp_path / "extra.yaml"
    extra.write_text("preprocess:\n  size: 16\n  size: 32\n")
    output = failed_run(workdir, "--configfile", str(extra))
    message = f"config file {extra}: key preprocess.size is given twice (lines 2 and 3)"
    assert_refused_before_any_job(workdir, output, message)


def test_labels_that_do_not_fit_the_weights_file_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "cnn.safetensors"
    save_weights(weights, CNNWeights(init_weights(1, 1, 32, 2).tensors, labels=["cat", "dog"]))
    workdir = copy_workflow(tmp_path / "run", config_with(("classifier", "weights"), str(weights)))
    message = f"config key classifier.labels: 3 labels, but weights file {weights} has 2 outputs"
    assert_refused_before_any_job(workdir, failed_run(workdir), message)


def test_folder_that_is_not_a_pipeline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sd15").mkdir()
    (tmp_path / "sd15" / "model.ckpt").write_bytes(b"\x80\x02")
    config = config_with(("model", "source"), str(tmp_path / "sd15"))
    workdir = copy_workflow(tmp_path / "run", config)
    message = f"config key model.source: model folder '{tmp_path / 'sd15'}' is not a diffusers"
    assert_refused_before_any_job(workdir, failed_run(workdir), message)


# ---- a Hub id that is not available: the first job fails within seconds


@pytest.fixture
def hub_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A config naming a Hub id, run with an empty Hugging Face cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = copy.deepcopy(SMALL_CONFIG)
    config["model"] = {"source": "sdcnn-test/no-such-model"}
    return config


@pytest.fixture
def closed_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """No network, for sure: the Hub endpoint refuses connections."""
    with closed_port_url() as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        yield endpoint


def timed_failed_run(workdir: Path, target: str) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        output = failed_run(workdir, target, timeout=MODEL_ERROR_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no failure within {MODEL_ERROR_TIMEOUT_S} s: the Hub is being retried")
    return output, time.perf_counter() - started


def test_hub_id_not_in_the_cache_fails_fast_offline(
    tmp_path: Path, hub_config: dict[str, Any], record_property: Any
) -> None:
    workdir = copy_workflow(tmp_path / "run", hub_config)
    output, seconds = timed_failed_run(workdir, "results/images/city")
    record_property("seconds_to_failure", round(seconds, 2))
    print(f"offline Hub id: snakemake exited after {seconds:.1f} s")
    assert (
        "Error in generate[shard=city]: model.source 'sdcnn-test/no-such-model' is not "
        "(completely) in the local Hugging Face cache" in output
    )
    assert "hf download sdcnn-test/no-such-model --local-dir" in output
    assert "model.allow_download: true" in output
    assert not (workdir / "results" / "images").exists()


def test_hub_id_with_downloads_but_no_network_fails_fast(
    tmp_path: Path, hub_config: dict[str, Any], closed_endpoint: str, record_property: Any
) -> None:
    hub_config["model"]["allow_download"] = True
    workdir = copy_workflow(tmp_path / "run", hub_config)
    output, seconds = timed_failed_run(workdir, "results/images/city")
    record_property("seconds_to_failure", round(seconds, 2))
    print(f"Hub id, downloads allowed, no network: snakemake exited after {seconds:.1f} s")
    assert "the Hugging Face Hub cannot be reached (ConnectError" in output
    assert "Retrying" not in (workdir / "results" / "logs" / "generate" / "city.log").read_text()
    assert not (workdir / "results" / "images").exists()


# ---- corrupt files in a finished run: the step that reads them fails, nothing partial stays


@pytest.fixture
def finished_run(small_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared finished run (with Snakemake's metadata), to damage."""
    return Path(shutil.copytree(small_run, tmp_path / "finished", symlinks=True))


def test_corrupt_png_fails_preprocess_and_leaves_no_tensors(finished_run: Path) -> None:
    results = finished_run / "results"
    broken = results / "images" / "city" / "city_001.png"
    broken.write_bytes(broken.read_bytes()[:-100])  # a truncated download or copy
    kept = {path: path.read_bytes() for path in (results / "images").rglob("*.png")}
    output = failed_run(finished_run, "--forcerun", "preprocess")
    assert "results/images/city/city_001.png: not a readable image" in output
    assert not (results / "tensors" / "city").exists()
    assert not (results / "previews" / "city").exists()
    assert leftovers(results) == []
    assert {path: path.read_bytes() for path in (results / "images").rglob("*.png")} == kept


def test_corrupt_tensor_fails_predict_and_leaves_no_json(finished_run: Path) -> None:
    results = finished_run / "results"
    tensor = results / "tensors" / "harbor" / "harbor_001.npy"
    np.save(tensor, np.full((1, 32, 32), np.nan, np.float32), allow_pickle=False)
    output = failed_run(finished_run, "--forcerun", "predict")
    assert "results/tensors/harbor/harbor_001.npy: contains NaN or infinite values" in output
    assert not (results / "predictions" / "harbor.json").exists()
    assert leftovers(results) == []


def test_pickle_tensor_fails_predict_without_running_it(finished_run: Path) -> None:
    results = finished_run / "results"
    marker = finished_run / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = Path  # any object makes numpy write a pickle
    np.save(results / "tensors" / "city" / "city_000.npy", payload, allow_pickle=True)
    output = failed_run(finished_run, "--forcerun", "predict")
    assert "results/tensors/city/city_000.npy: not a readable .npy file" in output
    assert not (results / "predictions" / "city.json").exists()
    assert not marker.exists()


# ---- a prompt made of shell syntax is only ever text

# Each context a naive shell command could put the text in runs at least one `touch`:
# unquoted or "..." runs $(...) and `...`; '...' is left by the '; ... ; ' part.
SHELL_PROMPT = (
    "a city at night $(touch pwned1) `touch pwned2` '; touch pwned3; ' \"; touch pwned4; \" "
    "&& touch pwned5 ; touch pwned6 > pwned7 | cat ${HOME} %s {prompt} {{x}}\nsecond line"
)


@pytest.mark.pipeline
def test_shell_syntax_in_a_prompt_is_only_text(tmp_path: Path) -> None:
    config = {
        "prompts": {
            "shell": {"text": SHELL_PROMPT, "negative_prompt": "$(touch pwned8)", "n_images": 2}
        },
        "generation": {"steps": 2, "height": 64, "width": 64},
        "preprocess": {"size": 32},
    }
    workdir = copy_workflow(tmp_path / "run", config)
    run_snakemake(workdir, "results/images/shell")
    images = sorted((workdir / "results" / "images" / "shell").glob("*.png"))
    assert [path.name for path in images] == ["shell_000.png", "shell_001.png"]
    for path in images:
        with Image.open(path) as image:
            assert image.text["prompt"] == SHELL_PROMPT
            assert image.text["negative_prompt"] == "$(touch pwned8)"
    assert sorted(tmp_path.rglob("pwned*")) == []
