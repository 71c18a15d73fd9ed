"""Reproducibility across machines (docs/reproducibility.md), checked on this one.

The suite runs on one machine, so another machine is stood in for by the environment
variables that make this one compute with other kernels
(``sdcnn.workflow.reproducibility.OTHER_KERNELS``: ATen without SIMD, oneDNN limited to SSE4.1,
...; flipped, so a suite run under them compares with the native kernels).  Under them:
the default config, run again, keeps the cross-machine contract against the default run;
a shared image store hands it no image made with the other kernels; the manifest and
every PNG say which kernels made them; and the golden-vector and training tests pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from safetensors.numpy import save_file

from sdcnn.core.kernels import (
    KERNEL_KNOBS,
    cpu_description,
    kernel_environment,
)
from sdcnn.core.png_text import MADE_ON as MADE_ON_TEXT_KEY
from sdcnn.generate.image_store import ImageStore, store_from_config
from sdcnn.generate.model_source import ModelSource
from sdcnn.generate.pipeline import PromptSpec
from sdcnn.generate.shard_generator import ShardGenerator
from sdcnn.workflow.reproducibility import (
    CROSS_MACHINE,
    OTHER_KERNELS,
    compare_runs,
    main,
    other_kernels_environment,
)
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow

OTHER_ENVIRONMENT = other_kernels_environment(os.environ)
OTHER_KNOBS = {name: OTHER_ENVIRONMENT[name] for name in KERNEL_KNOBS if name in OTHER_ENVIRONMENT}


# ---- the default config under another CPU's kernels


@pytest.fixture(scope="module")
def other_kernels_run(default_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/config.yaml run under the other kernels, with a copy of the default run's
    image store (as a store shared by the nodes of a mixed cluster would be)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("other_kernels"))
    shutil.copytree(default_run / ".image-store", workdir / ".image-store")
    # a bound against a hang, not a time: a machine loaded by other work took it past
    # the default 900 s
    run_snakemake(workdir, env=OTHER_ENVIRONMENT, timeout=2400)
    return workdir


@pytest.mark.pipeline
def test_other_kernels_keep_the_cross_machine_contract(
    default_run: Path, other_kernels_run: Path
) -> None:
    differences = compare_runs(default_run / "results", other_kernels_run / "results")
    assert differences.images.compared == 144 and differences.tensors.compared == 144
    assert differences.violations() == [], differences.report()


def made_on_records(results: Path) -> list[dict[str, Any]]:
    records = []
    for png in sorted((results / "images").rglob("*.png")):
        with Image.open(png) as image:
            records.append(json.loads(image.text[MADE_ON_TEXT_KEY]))
    return records


@pytest.mark.pipeline
def test_a_shared_store_hands_back_no_image_made_with_other_kernels(
    default_run: Path, other_kernels_run: Path
) -> None:
    logs = "".join(
        path.read_text(encoding="utf-8")
        for path in (other_kernels_run / "results" / "logs" / "generate").glob("*.log")
    )
    counts = re.findall(r"(\d+) reused from the image store, (\d+) generated \(", logs)
    assert counts, f"no generate summary line in the logs:\n{logs[-2000:]}"
    reused = sum(int(reused) for reused, _ in counts)
    generated = sum(int(generated) for _, generated in counts)
    assert (reused, generated) == (0, 144), f"{reused} reused, {generated} generated"
    native = made_on_records(default_run / "results")
    other = made_on_records(other_kernels_run / "results")
    assert len(native) == len(other) == 144
    assert all(record["knobs"] == OTHER_KNOBS for record in other), other[0]
    assert all(record == native[0] for record in native) and native[0] != other[0]


@pytest.mark.pipeline
def test_the_manifest_names_the_kernels_of_the_images_and_the_training(
    other_kernels_run: Path,
) -> None:
    manifest = json.loads((other_kernels_run / "results" / "manifest.json").read_text())
    images = manifest["kernels"]["images"]
    assert [entry["images"] for entry in images] == [144], images
    assert images[0]["made_on"]["knobs"] == OTHER_KNOBS
    assert manifest["kernels"]["training"]["knobs"] == OTHER_KNOBS


def test_the_golden_and_training_tests_pass_under_other_kernels() -> None:
    """tests/contract/test_golden.py once more, under the other kernels: torch matches the golden
    probabilities to 1e-5, and training the shapes32 case gives its committed weights."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        str(REPO / "tests" / "contract" / "test_golden.py"),
    ]
    result = subprocess.run(
        command, cwd=REPO, env=OTHER_ENVIRONMENT, capture_output=True, text=True, timeout=2400
    )
    assert result.returncode == 0, f"under {OTHER_KNOBS}:\n{result.stdout[-5000:]}"
    assert re.search(r"\b\d+ passed\b", result.stdout) and " skipped" not in result.stdout


# ---- the parts, without a run


def test_other_kernels_flip_every_knob() -> None:
    assert other_kernels_environment({"PATH": "/bin"}) == {"PATH": "/bin", **OTHER_KERNELS}
    already = {"PATH": "/bin", **OTHER_KERNELS}
    assert other_kernels_environment(already) == {"PATH": "/bin"}


X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 sse4_1 sse4_2 avx avx2 fma f16c smep avx512f avx512_bf16 amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd evtstrm aes sve sve2 bf16 i8mm sme
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


def test_the_cpu_is_described_by_what_picks_kernels() -> None:
    x86 = cpu_description(X86_CPUINFO)
    assert (x86["vendor"], x86["model"]) == ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+")
    assert x86["simd"] == sorted(
        ["sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile"]
    )  # not fpu, sse2 (every x86-64 has them) or smep (not a SIMD extension)
    arm = cpu_description(ARM_CPUINFO)
    assert (arm["vendor"], arm["model"]) == ("0x41", "0x41/0xd4f")
    assert arm["simd"] == sorted(["asimd", "sve", "sve2", "bf16", "i8mm", "sme"])
    assert cpu_description("")["model"] is None


def test_the_kernel_environment_names_the_knobs_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KERNEL_KNOBS:
        monkeypatch.delenv(name, raising=False)
    assert kernel_environment()["knobs"] == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("UNRELATED", "1")
    environment = kernel_environment()
    assert environment["knobs"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "gpu" not in environment and environment["cpu"]["torch_capability"]


def demo_generator(store: ImageStore, kernels: dict[str, Any] | None = None) -> ShardGenerator:
    from sdcnn.generate.model_source import DEMO_PIPELINE_DIR
    from sdcnn.generate.pipeline import GenerationSettings

    settings = GenerationSettings(
        steps=2, guidance_scale=6.0, height=64, width=64, scheduler="ddim", base_seed=1
    )
    generator = ShardGenerator(
        settings=settings,
        model=ModelSource("local", str(DEMO_PIPELINE_DIR), "demo"),
        allow_download=False,
        device="cpu",
        dtype="torch.float32",
        store=store,
    )
    if kernels is not None:
        generator.kernels = kernels
    return generator


def test_the_store_key_holds_the_kernels_unless_machines_may_mix(tmp_path: Path) -> None:
    prompt = PromptSpec(prompt_id="p", text="a red circle", negative_prompt="", n_images=2)
    elsewhere = {**kernel_environment(), "knobs": {"ATEN_CPU_CAPABILITY": "default"}}
    strict = ImageStore(tmp_path)
    here, there = demo_generator(strict), demo_generator(strict, elsewhere)
    assert all(key["kernels"] == kernel_environment() for key in here.prompt_image_keys(prompt))
    assert here.prompt_image_keys(prompt) != there.prompt_image_keys(prompt)
    mixing = ImageStore(tmp_path, across_machines=True)
    keys = demo_generator(mixing).prompt_image_keys(prompt)
    assert keys == demo_generator(mixing, elsewhere).prompt_image_keys(prompt)
    assert all("kernels" not in key for key in keys)


def test_the_config_says_whether_machines_may_mix(tmp_path: Path) -> None:
    assert store_from_config({"path": str(tmp_path)}).across_machines is False
    assert store_from_config({"path": str(tmp_path), "across_machines": True}).across_machines


def test_a_stored_image_keeps_where_it_was_made(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, across_machines=True)
    made_on = {"cpu": {"model": "elsewhere"}, "knobs": {}}
    store.put({"k": 1}, Image.new("RGB", (4, 4)), flagged=False, made_on=made_on)
    entry = store.get_entry({"k": 1})
    assert entry is not None and entry.made_on == made_on and entry.flagged is False


# ---- comparing two runs


def fake_results(root: Path, pixels: np.ndarray, top_label: str, p_cat: float) -> Path:
    results = root / "results"
    (results / "images" / "p").mkdir(parents=True)
    (results / "tensors" / "p").mkdir(parents=True)
    (results / "weights").mkdir(parents=True)
    Image.fromarray(pixels).save(results / "images" / "p" / "p_000.png")
    np.save(results / "tensors" / "p" / "p_000.npy", pixels[None, :, :, 0] / 255.0)
    save_file(
        {"dense.bias": np.array([p_cat, 0.0], np.float32)},
        results / "weights" / "trained.safetensors",
    )
    row = {"image_id": "p_000", "top_label": top_label, "p_cat": p_cat, "p_dog": 1 - p_cat}
    summary = {"rows": [row], "metrics": {"holdout": {"accuracy": 1.0}}}
    (results / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return results


def test_compare_runs_measures_each_kind_of_output(tmp_path: Path) -> None:
    pixels = np.full((4, 4, 3), 100, np.uint8)
    a = fake_results(tmp_path / "a", pixels, "cat", 0.7)
    assert compare_runs(a, a).violations() == []
    moved = pixels.copy()
    moved[0, 0] = 102  # two levels, in three channels of one pixel
    b = fake_results(tmp_path / "b", moved, "cat", 0.7 + CROSS_MACHINE.probability / 2)
    differences = compare_runs(a, b)
    assert differences.images.differing == ["images/p/p_000.png"]
    assert (differences.images.largest, differences.images.changed_values) == (2, 3)
    assert differences.tensors.largest == pytest.approx(2 / 255)
    assert differences.weights.largest == pytest.approx(CROSS_MACHINE.probability / 2, rel=1e-5)
    assert differences.violations() == []
    moved[1, 1] = 100 + CROSS_MACHINE.image_levels + 1
    c = fake_results(tmp_path / "c", moved, "dog", 0.7 + 2 * CROSS_MACHINE.probability)
    broken = " ".join(compare_runs(a, c).violations())
    assert f"pixels differ by up to {CROSS_MACHINE.image_levels + 1} levels" in broken
    assert "probabilities differ by up to" in broken and "top labels differ" in broken


def test_the_command_exits_1_when_the_contract_breaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pixels = np.full((4, 4, 3), 100, np.uint8)
    a = fake_results(tmp_path / "a", pixels, "cat", 0.7)
    b = fake_results(tmp_path / "b", pixels, "dog", 0.7)
    assert main([str(a), str(a)]) == 0
    assert "cross-machine contract: kept" in capsys.readouterr().out
    assert main([str(a), str(b)]) == 1
    assert "BROKEN: top labels differ for ['p_000']" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(a), str(tmp_path)])
    assert "no summary.json" in capsys.readouterr().err


def test_the_manifest_reads_the_kernels_from_the_pngs_and_the_training(tmp_path: Path) -> None:
    from sdcnn.reporting.manifest import manifest_document

    folder = tmp_path / "results" / "images" / "p"
    folder.mkdir(parents=True)
    here = {"cpu": {"model": "here"}, "knobs": {}}
    for index, made_on in enumerate([here, here, {**here, "knobs": {"X": "1"}}]):
        info = PngImagePlugin.PngInfo()
        info.add_text(MADE_ON_TEXT_KEY, json.dumps(made_on))
        Image.new("RGB", (2, 2)).save(folder / f"p_{index:03d}.png", pnginfo=info)
    (folder / "not-a.png").write_bytes(b"not a png")  # counted as no record, not an error
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"kernels": here}), encoding="utf-8")
    document = manifest_document([folder.parent], [], "0" * 64, training_metrics=metrics)
    assert document["kernels"] == {
        "images": [
            {"images": 1, "made_on": {**here, "knobs": {"X": "1"}}},
            {"images": 2, "made_on": here},
        ],
        "training": here,
    }
    assert manifest_document([folder.parent], [], "0" * 64)["kernels"]["training"] is None
