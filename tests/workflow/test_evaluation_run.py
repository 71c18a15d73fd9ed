"""Real images through the real workflow: scored exactly, odd files read as documented, a
refused set leaving nothing behind, and each prompt's diversity in the summary."""

from __future__ import annotations

import io
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sdcnn.demo.real_set import demo_real_folder
from sdcnn.evaluate.real_images import real_image_id
from tests.support.configs import config_with
from tests.support.job_plan import dry_run
from tests.support.real_sets import write_real_picture
from tests.support.runs import run_snakemake
from tests.support.workspace import copy_workflow, write_config

pytestmark = pytest.mark.pipeline

LABELS = ["circle", "square", "triangle"]
WRONG = {"circle": "square", "square": "triangle", "triangle": "circle"}  # a label it is not
AGGREGATES = {"summary", "manifest", "all", "summary_page", "run_info", "evaluation_figure"}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_default_run_scores_its_real_like_set(default_run: Path) -> None:
    """`make run`'s config: 36 real-like pictures in 2 real shards, each prediction file
    saying source real, scored beside the held-out images in the metrics file, the summary
    and the closing line."""
    metrics = read_json(default_run / "results/evaluation/metrics.json")
    summary = read_json(default_run / "results/summary.json")
    assert summary["evaluation"] == metrics
    assert (metrics["n_images"], metrics["n_labelled"]) == (36, 36)
    held = summary["metrics"]["holdout"]
    assert metrics["holdout_accuracy"] == held["accuracy"]
    assert metrics["gap"] == pytest.approx(held["accuracy"] - metrics["real_accuracy"])
    documents = [read_json(p) for p in sorted((default_run / "results/real/predictions").iterdir())]
    assert [document["shard"] for document in documents] == ["1-of-2", "2-of-2"]
    records = [image for document in documents for image in document["images"]]
    assert {document["source"] for document in documents} == {"real"}
    assert sorted(image["path"] for image in records) == sorted(
        str(path.relative_to(demo_real_folder())) for path in demo_real_folder().rglob("*.png")
    )
    assert all(image["split"] is None and image["label"] in LABELS for image in records)
    right = sum(image["correct"] for image in records)
    assert metrics["counts"]["right"] == right
    assert metrics["real_accuracy"] == right / 36
    assert (default_run / "results/evaluation/confusion_matrix.png").stat().st_size > 0


def test_real_images_never_reach_training(default_run: Path) -> None:
    """The training plan names the labelled prompts' tensors only."""
    plan = (default_run / "results/training/plan.json").read_text(encoding="utf-8")
    assert "real" not in json.loads(plan)["prompts"].__repr__()
    assert "results/real" not in plan and "real-like" not in plan


def test_the_closing_line_names_both_accuracies_and_the_gap(default_run: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "sdcnn.reporting.summary", "results/summary.json"],
        cwd=default_run,
        capture_output=True,
        text=True,
        check=True,
    )
    metrics = read_json(default_run / "results/evaluation/metrics.json")
    held, right = metrics["holdout"], metrics["counts"]["right"]
    assert result.stdout == (
        f"held-out synthetic accuracy {held['accuracy']:.3f} ({held['n_right']} of "
        f"{held['n_images']}), real accuracy {metrics['real_accuracy']:.3f} ({right} of 36), "
        f"gap {metrics['gap']:+.3f}\n"
    )


def test_the_summary_holds_every_prompts_diversity(default_run: Path) -> None:
    summary = read_json(default_run / "results/summary.json")
    default = yaml.safe_load((default_run / "config/config.yaml").read_text(encoding="utf-8"))
    results = summary["diversity"]["prompts"]
    assert [result["prompt_id"] for result in results] == list(default["prompts"])
    for result in results:
        assert result["n_images"] == 12 and 0 < result["mean_distance"] < 1
        assert result["flag"] == bool(result["reasons"])
        assert result["flag"] == (result["n_with_near_duplicate"] > 0), result


# ---- k of n known wrong


MISLABELLED = 5  # of the 36 real-like pictures, given a label they do not show


@pytest.fixture(scope="module")
def mislabelled_run(default_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default run's copy, measured on the real-like set as a sheet in which the first
    MISLABELLED pictures carry a wrong label, plus one picture without a label."""
    workdir = tmp_path_factory.mktemp("mislabelled") / "workflow"
    shutil.copytree(default_run, workdir, symlinks=True)
    folder = workdir / "mislabelled"
    shutil.copytree(demo_real_folder(), folder)
    rows = ["path\tlabel"]
    for index, path in enumerate(sorted(folder.rglob("*.png"))):
        relative = path.relative_to(folder).as_posix()
        label = relative.split("/")[0]
        rows.append(f"{relative}\t{WRONG[label] if index < MISLABELLED else label}")
    write_real_picture(folder / "unlabelled.png", 1_000_044)
    rows.append("unlabelled.png\t")
    (folder / "real.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text(encoding="utf-8"))
    config["evaluation"]["real"] = "mislabelled/real.tsv"
    write_config(workdir, config)
    plan, _ = dry_run(workdir)
    planned = {rule for rule, _ in plan.jobs} - AGGREGATES
    assert planned == {"preprocess_real", "predict_real"}, "a new real set re-ran more"
    run_snakemake(workdir)
    return workdir


def test_k_known_wrong_of_n_give_exactly_n_minus_k_over_n(
    default_run: Path, mislabelled_run: Path
) -> None:
    """The CNN is right on all 36 real-like pictures (the default run says so); with
    MISLABELLED of them labelled wrong it is wrong on exactly those: accuracy (n - k) / n."""
    before = read_json(default_run / "results/evaluation/metrics.json")
    assert before["counts"]["right"] == 36, "the premise: every real-like picture right"
    metrics = read_json(mislabelled_run / "results/evaluation/metrics.json")
    n, k = 36, MISLABELLED
    assert (metrics["n_labelled"], metrics["n_unlabelled"]) == (n, 1)
    assert metrics["counts"]["right"] == n - k and metrics["counts"]["wrong"] == k
    assert Fraction(metrics["real_accuracy"]).limit_denominator(1000) == Fraction(n - k, n)
    assert metrics["real_accuracy"] == (n - k) / n
    counts = np.array(metrics["real"]["confusion_matrix"]["counts"])  # rows: the given label
    assert counts.sum() == n and np.trace(counts) == n - k
    gap = Fraction(before["holdout"]["n_right"], before["holdout"]["n_images"]) - Fraction(n - k, n)
    assert metrics["gap"] == float(gap)


def test_the_mislabelled_images_are_the_wrong_ones(mislabelled_run: Path) -> None:
    sheet = (mislabelled_run / "mislabelled/real.tsv").read_text(encoding="utf-8").splitlines()
    given = dict(line.split("\t") for line in sheet[1:])
    records = [
        image
        for path in sorted((mislabelled_run / "results/real/predictions").iterdir())
        for image in read_json(path)["images"]
    ]
    wrong = {image["path"] for image in records if image["correct"] is False}
    relabelled = {path for path, label in given.items() if label and label != path.split("/")[0]}
    assert wrong == relabelled and len(wrong) == MISLABELLED
    unlabelled = [image for image in records if image["label"] is None]
    assert [image["path"] for image in unlabelled] == ["unlabelled.png"]
    assert unlabelled[0]["correct"] is None and unlabelled[0]["image_id"] == real_image_id(
        "unlabelled.png"
    )


# ---- odd files, and sets refused before any job


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def odd_files() -> dict[str, bytes]:
    """A picture of each odd kind (path in the set -> bytes), all of one drawing."""
    from sdcnn.demo.pictures import draw_picture

    rgb = Image.fromarray(draw_picture(1_000_004)[0])  # a circle
    gray = rgb.convert("L")
    wide = np.asarray(gray).astype(np.uint16) * 257  # 16-bit, the same gray picture
    rgba = rgb.convert("RGBA")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)  # 75 colours: exact
    frames = [palette, Image.new("RGB", rgb.size, "black").convert("P")]
    rotated = rgb.transpose(Image.Transpose.ROTATE_90)  # upright after EXIF orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "circle/plain.png": encoded(rgb, "PNG"),
        "circle/gray.png": encoded(gray, "PNG"),
        "circle/sixteen-bit.png": encoded(Image.fromarray(wide), "PNG"),
        "circle/palette.png": encoded(palette, "PNG"),
        "circle/alpha.png": encoded(rgba, "PNG"),
        "circle/cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG", quality=95),
        "circle/gray.jpg": encoded(rgb.convert("L"), "JPEG", quality=95),
        "circle/rotated.jpg": encoded(rotated, "JPEG", quality=95, exif=exif),
        "circle/animated.gif": encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "circle/picture.webp": encoded(rgb, "WEBP", lossless=True),
        "circle/picture.bmp": encoded(rgb, "BMP"),
        "circle/picture.tiff": encoded(rgb, "TIFF"),
    }


def small_real_run(tmp_path: Path, files: dict[str, bytes], **evaluation: object) -> Path:
    """A copy of the workflow on the small config with glorot weights (nothing to train),
    the labels of the demo's pictures and a real set of ``files`` in one shard."""
    config = config_with(("classifier", "labels"), LABELS)
    config["classifier"]["weights"] = "glorot"
    for prompt in config["prompts"].values():
        prompt.pop("label", None)
    config["evaluation"] = {"real": "odd", "shards": 1, **evaluation}
    workdir = copy_workflow(tmp_path / "workflow", config)
    for relative, data in files.items():
        (workdir / "odd" / relative).parent.mkdir(parents=True, exist_ok=True)
        (workdir / "odd" / relative).write_bytes(data)
    return workdir


def test_odd_files_are_read_as_documented_and_predicted(tmp_path: Path) -> None:
    """Each odd kind is converted (16-bit scaled, CMYK and palette converted, alpha on white,
    gray replicated, EXIF turned upright, a GIF's first frame) and gets its prediction; the
    lossless ones give exactly the plain PNG's tensor."""
    files = odd_files()
    workdir = small_real_run(tmp_path, files)
    run_snakemake(workdir, "results/real/predictions/1-of-1.json")
    document = read_json(workdir / "results/real/predictions/1-of-1.json")
    assert sorted(image["path"] for image in document["images"]) == sorted(files)
    tensors = {image["path"]: np.load(workdir / image["tensor"]) for image in document["images"]}
    plain = tensors["circle/plain.png"]
    lossless = ["palette.png", "alpha.png", "animated.gif", "picture.webp", "picture.bmp"]
    for name in [*lossless, "picture.tiff"]:
        assert np.array_equal(tensors[f"circle/{name}"], plain), name
    # 16-bit values v * 257 scale back to v exactly
    assert np.array_equal(tensors["circle/sixteen-bit.png"], tensors["circle/gray.png"])
    for lossy in ("cmyk.jpg", "gray.jpg", "rotated.jpg", "gray.png"):
        # JPEG (and PIL's gray against OpenCV's) is near the plain picture: an upright
        # circle where it was drawn, not a rotated or inverted one
        assert np.abs(tensors[f"circle/{lossy}"] - plain).mean() < 0.02, lossy


REFUSED = {
    "a zero-byte file": ("circle/empty.png", b"", "zero-byte"),
    "a truncated PNG": ("circle/cut.png", None, "cut short|truncated|broken|corrupt"),
    "a label outside classifier.labels": ("star/x.png", "plain", "not one of the classifier"),
    "a file in the root": ("loose.png", "plain", "has no label"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_set_names_the_file_and_writes_nothing(tmp_path: Path, case: str) -> None:
    files = odd_files()
    relative, data, message = REFUSED[case]
    plain = files["circle/plain.png"]
    files[relative] = (
        plain if data == "plain" else plain[: len(plain) // 2] if data is None else data
    )
    workdir = small_real_run(tmp_path, files)
    result = run_snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "evaluation.real" in result.stderr and Path(relative).name in result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not (workdir / "results").exists(), "a refused set left outputs behind"


def test_a_symlink_loop_is_refused_naming_it(tmp_path: Path) -> None:
    workdir = small_real_run(tmp_path, {"circle/plain.png": odd_files()["circle/plain.png"]})
    loop = workdir / "odd" / "circle" / "loop.png"
    loop.symlink_to(loop)
    result = run_snakemake(workdir, check=False)
    assert result.returncode != 0 and "loop.png" in result.stderr, result.stderr
    assert not (workdir / "results").exists()


def test_with_the_header_check_a_corrupt_file_stops_only_its_shard(tmp_path: Path) -> None:
    """check: header reads no pixel data before the run: a PNG cut short passes, and its
    preprocess_real job fails naming it, leaving no tensors for its shard."""
    files = odd_files()
    plain = files["circle/plain.png"]
    files["circle/cut.png"] = plain[: len(plain) // 2]
    workdir = small_real_run(tmp_path, files, check="header")
    result = run_snakemake(workdir, "results/real/tensors/1-of-1", check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/preprocess_real/1-of-1.log").read_text(encoding="utf-8")
    assert "cut.png" in log + result.stderr
    assert not (workdir / "results/real/tensors/1-of-1").exists()
