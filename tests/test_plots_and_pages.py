"""Charts, contact sheets, report pages and progress lines, on small made-up data."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sdcnn import plots
from sdcnn.pages import run_info_page, summary_page
from sdcnn.progress import LogLines, log_progress_bar
from sdcnn.provenance import config_sha256
from sdcnn.step import StepError

LABELS = ["cat", "dog", "ship", "truck"]


def probabilities(*values: float) -> dict[str, float]:
    return dict(zip(LABELS, values, strict=True))


def texts(fig) -> list[str]:  # noqa: ANN001 (a matplotlib Figure)
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def document(prompt_id: str, rows: list[dict[str, float]]) -> dict:
    images = []
    for index, probs in enumerate(rows):
        top = max(probs, key=probs.get)
        images.append(
            {
                "image_id": f"{prompt_id}_{index:03d}",
                "probabilities": probs,
                "top_label": top,
                "top_probability": probs[top],
            }
        )
    return {"prompt_id": prompt_id, "labels": LABELS, "images": images}


def test_top_labels_are_the_most_probable_in_order() -> None:
    probs = probabilities(0.1, 0.5, 0.3, 0.1)
    assert plots.top_labels(probs) == [("dog", 0.5), ("ship", 0.3), ("cat", 0.1)]
    assert plots.top_labels(probs, 1) == [("dog", 0.5)]


def test_probability_chart_shows_every_label_and_names_the_top_one() -> None:
    fig = plots.probability_figure("city_000", probabilities(0.1, 0.2, 0.6, 0.1))
    shown = texts(fig)
    assert "city_000: ship (0.600)" in shown
    assert {"cat", "dog", "ship", "truck"} <= set(shown)
    assert {"0.100", "0.200", "0.600"} <= set(shown)
    ax = fig.axes[0]
    bars = sorted(ax.patches, key=lambda bar: -bar.get_y())  # top to bottom
    assert [round(bar.get_width(), 6) for bar in bars] == [0.1, 0.2, 0.6, 0.1]
    top_colour = [bar for bar in bars if bar.get_width() == pytest.approx(0.6)][0].get_facecolor()
    assert all(bar.get_facecolor() != top_colour for bar in bars if bar.get_width() < 0.6)


def test_a_chart_of_many_labels_keeps_the_most_probable() -> None:
    many = {f"label{i:03d}": float(i) for i in range(100)}
    total = sum(many.values())
    many = {label: value / total for label, value in many.items()}
    labels, note = plots.chart_labels(many)
    assert labels == [f"label{i:03d}" for i in range(99, 79, -1)]
    assert note == "the 20 most probable of 100 labels"


def test_contact_sheet_shows_original_preprocessed_and_top3(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for index, probs in enumerate(
        [probabilities(0.1, 0.5, 0.3, 0.1), probabilities(0.7, 0.1, 0.1, 0.1)]
    ):
        rows.append(
            plots.SheetRow(
                image_id=f"city_{index:03d}",
                original=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                preprocessed=rng.integers(0, 256, (32, 32), dtype=np.uint8),
                seed=str(100 + index),
                top=plots.top_labels(probs),
            )
        )
    fig = plots.contact_sheet_figure("city", "A city", "blurry", rows, len(LABELS))
    shown = texts(fig)
    assert "city: “A city”" in shown
    assert any("negative prompt: “blurry”" in text for text in shown)
    assert [t for t in shown if "  0." in t][:3] == ["dog  0.500", "ship  0.300", "cat  0.100"]
    assert "cat  0.700" in shown and "seed 101" in shown
    drawn = [image.get_array() for ax in fig.axes for image in ax.get_images()]
    assert np.array_equal(drawn[0], rows[0].original)
    assert np.array_equal(drawn[1], rows[0].preprocessed)
    assert np.array_equal(drawn[3], rows[1].preprocessed)
    png = Image.open(io.BytesIO(plots.png_bytes(fig)))
    assert png.size == (900, 600)  # 9 in wide; 1 in header + 2 rows of 2.4 in + 0.2 in footer


def test_contact_sheet_of_many_images_stays_a_reasonable_picture() -> None:
    assert plots.sheet_grid(3) == (1, 3)
    columns, rows = plots.sheet_grid(1000)
    assert columns * rows >= 1000 and columns == 16
    width_in, height_in = 9.0 * columns, 1.2 + 2.4 * rows
    dpi = plots.sheet_dpi(width_in, height_in)
    assert width_in * height_in * dpi**2 <= plots.MAX_PIXELS * 1.0001
    assert plots.sheet_dpi(9.0, 8.4) == plots.DPI


def test_predictions_must_hold_the_expected_images(tmp_path: Path) -> None:
    path = tmp_path / "city.json"
    path.write_text(json.dumps(document("city", [probabilities(0.1, 0.5, 0.3, 0.1)])))
    assert plots.read_predictions(path, ["city_000"])["prompt_id"] == "city"
    with pytest.raises(StepError, match="expected \\['city_000', 'city_001'\\]"):
        plots.read_predictions(path, ["city_000", "city_001"])
    path.write_text("{not json")
    with pytest.raises(StepError, match="not a readable prediction file"):
        plots.read_predictions(path, ["city_000"])


def test_prompt_summary_line_counts_winners_and_names_the_surest() -> None:
    doc = document(
        "city",
        [
            probabilities(0.1, 0.5, 0.3, 0.1),
            probabilities(0.1, 0.6, 0.2, 0.1),
            probabilities(0.7, 0.1, 0.1, 0.1),
        ],
    )
    line = plots.prompt_summary_line(doc, "results/contact_sheets/city.png")
    assert line == (
        "city: 3 images, top: dog ×2, cat ×1; surest city_002 cat (0.700); "
        "contact sheet results/contact_sheets/city.png"
    )
    assert "\n" not in line


def test_summary_page_frames_each_top_label() -> None:
    columns = ["prompt_id", "image_id", "top_label", "top_probability", "backend", "device"]
    columns += [f"p_{label}" for label in LABELS]
    rows = []
    for image in document("city", [probabilities(0.1, 0.5, 0.3, 0.1)])["images"]:
        row = {"prompt_id": "city", "image_id": image["image_id"], "backend": "torch"}
        row |= {"device": "cpu", "top_label": image["top_label"], "top_probability": 0.5}
        row |= {f"p_{label}": p for label, p in image["probabilities"].items()}
        rows.append(row)
    html = summary_page(columns, rows)
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html
    assert '<td class="num top" style="background: rgba(5, 150, 105, 0.650)">0.500</td>' in html
    assert html.count('class="num top"') == 1
    assert "<th>truck</th>" in html and "torch on cpu" in html


def test_run_info_page_shows_config_and_what_the_manifest_records() -> None:
    config = {
        "prompts": {"city": {"text": "A <b>city</b>", "n_images": 1}},
        "generation": {"steps": 2},
    }
    files = [
        {"path": f"results/x/{i}.png", "size": 1000 + i, "sha256": f"{i:064x}"} for i in range(305)
    ]
    manifest = {
        "config_sha256": config_sha256(config),
        "backends": ["torch"],
        "versions": {"python": "3.11.7", "torch": None},
        "files": files,
    }
    html = run_info_page(config, manifest, {"matplotlib": "3.11.2"})
    assert config_sha256(config) in html and "Classifier backend: torch." in html
    assert "A &lt;b&gt;city&lt;/b&gt;" in html  # escaped
    pre = html.split("<pre>")[1].split("</pre>")[0].replace("&lt;", "<").replace("&gt;", ">")
    assert yaml.safe_load(pre) == config
    assert "<td>torch</td><td><code>not installed</code></td>" in html
    assert "<td>matplotlib</td><td><code>3.11.2</code></td>" in html
    assert f"305 files, {sum(f['size'] for f in files):,} bytes in all" in html
    assert html.count("<tr><td><code>results/x/") == 300 and "… and 5 more" in html


def test_progress_redraws_become_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    from tqdm import tqdm

    caplog.set_level(logging.INFO, logger="sdcnn.progress")
    config = log_progress_bar("denoising", interval=0)
    for _ in tqdm(range(3), **config):
        pass
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("denoising:   0%|") and lines[0].endswith("0/3 [00:00<?, ?it/s]")
    assert lines[-1].startswith("denoising: 100%|##########") and "| 3/3 [" in lines[-1]
    assert len(lines) == len(set(lines)) >= 2
    assert not any("\r" in line or "\n" in line for line in lines)


def test_log_lines_split_carriage_returns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sdcnn.progress")
    stream = LogLines()
    assert stream.write("\rstep 1\rstep 2\n") == len("\rstep 1\rstep 2\n")
    stream.write("\rstep 2")
    assert [record.getMessage() for record in caplog.records] == ["step 1", "step 2"]
