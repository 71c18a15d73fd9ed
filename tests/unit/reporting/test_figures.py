"""Charts and contact sheets (sdcnn/reporting/figures.py), on small made-up data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcnn.core.errors import StepError
from sdcnn.reporting import figures
from tests.support.charts import LABELS, document, probabilities


def texts(fig) -> list[str]:  # noqa: ANN001 (a matplotlib Figure)
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_top_labels_are_the_most_probable_in_order() -> None:
    probs = probabilities(0.1, 0.5, 0.3, 0.1)
    assert figures.top_labels(probs) == [("dog", 0.5), ("ship", 0.3), ("cat", 0.1)]
    assert figures.top_labels(probs, 1) == [("dog", 0.5)]


def test_probability_chart_shows_every_label_and_names_the_top_one() -> None:
    fig = figures.probability_figure("city_000", probabilities(0.1, 0.2, 0.6, 0.1))
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
    labels, note = figures.chart_labels(many)
    assert labels == [f"label{i:03d}" for i in range(99, 79, -1)]
    assert note == "the 20 most probable of 100 labels"


def test_contact_sheet_shows_original_preprocessed_and_top3(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for index, probs in enumerate(
        [probabilities(0.1, 0.5, 0.3, 0.1), probabilities(0.7, 0.1, 0.1, 0.1)]
    ):
        rows.append(
            figures.SheetRow(
                image_id=f"city_{index:03d}",
                original=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                preprocessed=rng.integers(0, 256, (32, 32), dtype=np.uint8),
                seed=str(100 + index),
                top=figures.top_labels(probs),
            )
        )
    fig = figures.contact_sheet_figure("city", "A city", "blurry", rows, len(LABELS))
    shown = texts(fig)
    assert "city: “A city”" in shown
    assert any("negative prompt: “blurry”" in text for text in shown)
    assert [t for t in shown if "  0." in t][:3] == ["dog  0.500", "ship  0.300", "cat  0.100"]
    assert "cat  0.700" in shown and "seed 101" in shown
    drawn = [image.get_array() for ax in fig.axes for image in ax.get_images()]
    assert np.array_equal(drawn[0], rows[0].original)
    assert np.array_equal(drawn[1], rows[0].preprocessed)
    assert np.array_equal(drawn[3], rows[1].preprocessed)
    png = Image.open(io.BytesIO(figures.png_bytes(fig)))
    assert png.size == (900, 600)  # 9 in wide; 1 in header + 2 rows of 2.4 in + 0.2 in footer


def test_contact_sheet_of_many_images_stays_a_reasonable_picture() -> None:
    assert figures.sheet_grid(3) == (1, 3)
    columns, rows = figures.sheet_grid(1000)
    assert columns * rows >= 1000 and columns == 16
    width_in, height_in = 9.0 * columns, 1.2 + 2.4 * rows
    dpi = figures.sheet_dpi(width_in, height_in)
    assert width_in * height_in * dpi**2 <= figures.MAX_PIXELS * 1.0001
    assert figures.sheet_dpi(9.0, 8.4) == figures.DPI


def test_predictions_must_hold_the_expected_images(tmp_path: Path) -> None:
    path = tmp_path / "city.json"
    path.write_text(json.dumps(document("city", [probabilities(0.1, 0.5, 0.3, 0.1)])))
    assert figures.read_checked_predictions(path, ["city_000"])["prompt_id"] == "city"
    with pytest.raises(StepError, match="expected \\['city_000', 'city_001'\\]"):
        figures.read_checked_predictions(path, ["city_000", "city_001"])
    path.write_text("{not json")
    with pytest.raises(StepError, match="not a readable prediction file"):
        figures.read_checked_predictions(path, ["city_000"])


def test_prompt_summary_line_counts_winners_and_names_the_surest() -> None:
    doc = document(
        "city",
        [
            probabilities(0.1, 0.5, 0.3, 0.1),
            probabilities(0.1, 0.6, 0.2, 0.1),
            probabilities(0.7, 0.1, 0.1, 0.1),
        ],
    )
    line = figures.prompt_summary_line(doc, "results/contact_sheets/city.png")
    assert line == (
        "city: 3 images, top: dog ×2, cat ×1; surest city_002 cat (0.700); "
        "contact sheet results/contact_sheets/city.png"
    )
    assert "\n" not in line


def labelled(doc: dict, *meant: str | None) -> dict:
    for image, label in zip(doc["images"], meant, strict=True):
        image.update(label=label, correct=None if label is None else label == image["top_label"])
    return doc


def test_the_images_most_worth_a_look_are_the_wrong_then_the_least_sure() -> None:
    a = labelled(
        document("a", [probabilities(0.1, 0.7, 0.1, 0.1), probabilities(0.4, 0.2, 0.2, 0.2)]),
        "dog",
        None,
    )
    b = labelled(
        document("b", [probabilities(0.1, 0.1, 0.8, 0.0), probabilities(0.3, 0.3, 0.3, 0.1)]),
        "cat",
        None,
    )
    worst = figures.worst_images([a, b], 2)  # b_000 is wrong; b_001 (0.3) is the least sure
    assert [image["image_id"] for _, image in worst] == ["b_000", "b_001"]
    assert [prompt for prompt, _ in figures.worst_images([a, b], 3)] == ["a", "b", "b"]
    assert len(figures.worst_images([a, b], None)) == 4
    assert figures.worst_prompts([a, b], 1) == ["b"]
    assert figures.worst_prompts([a, b], 5) == ["a", "b"]
    sheet = figures.sheet_document(a, 1)
    assert [image["image_id"] for image in sheet["images"]] == ["a_001"]
    assert sheet["shown_of"] == 2 and len(a["images"]) == 2  # the document is left as it was
    assert figures.sheet_document(a, 2) is a


def write_shard(tmp_path: Path, prompts: dict[str, int]) -> dict:
    """A sharded layout's predictions, images and previews for ``prompts`` (id: images)."""
    rng = np.random.default_rng(1)
    root = {kind: tmp_path / kind for kind in ("predictions", "images", "previews")}
    specs = []
    for prompt_id, n in prompts.items():
        rows = [probabilities(*rng.dirichlet([1.0] * 4)) for _ in range(n)]
        (root["predictions"] / f"{prompt_id}.json").parent.mkdir(exist_ok=True)
        (root["predictions"] / f"{prompt_id}.json").write_text(
            json.dumps(document(prompt_id, rows))
        )
        for kind, shape in (("images", (16, 16, 3)), ("previews", (8, 8))):
            folder = root[kind] / prompt_id
            folder.mkdir(parents=True)
            for index in range(n):
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{prompt_id}_{index:03d}.png")
        specs.append(
            {"prompt_id": prompt_id, "text": prompt_id, "negative_prompt": "", "n_images": n}
        )
    return {"prompts": specs, **root}


def test_shard_figures_draw_within_the_limits(tmp_path: Path) -> None:
    from sdcnn.core.shards import ShardLayout

    shard = write_shard(tmp_path, {"p1": 3, "p2": 1, "p3": 2})
    lines = figures.write_shard_figures(
        prompts=shard["prompts"],
        layout=ShardLayout(True),
        predictions=shard["predictions"],
        image_dir=shard["images"],
        preview_dir=shard["previews"],
        charts_dir=tmp_path / "charts",
        contact_sheets=tmp_path / "sheets",
        charts=2,
        sheets=2,
        sheet_images=2,
    )
    documents = [json.loads((shard["predictions"] / f"p{k}.json").read_text()) for k in (1, 2, 3)]
    charted = sorted(p.stem for p in (tmp_path / "charts").rglob("*.png"))
    assert charted == sorted(image["image_id"] for _, image in figures.worst_images(documents, 2))
    sheets = sorted(p.stem for p in (tmp_path / "sheets").glob("*.png"))
    assert sheets == sorted(figures.worst_prompts(documents, 2))
    assert len(lines) == 3 and sum("no contact sheet" in line for line in lines) == 1


@pytest.mark.parametrize("labels", [["circle", "square", "triangle"], ["a", "automobile-truck"]])
def test_the_confusion_matrix_shows_its_axis_labels_whole(labels: list[str]) -> None:
    """Nothing is cut at the picture's edges: the rotated labels and "predicted" fit."""
    counts = [[3 if row == column else 0 for column in labels] for row in labels]
    holdout = {
        "n_images": 3 * len(labels),
        "accuracy": 1.0,
        "confusion_matrix": {"labels": labels, "counts": counts},
    }
    with Image.open(io.BytesIO(figures.confusion_matrix_png(holdout))) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    for name, edge in [("bottom", pixels[-2:]), ("top", pixels[:2]), ("left", pixels[:, :2])]:
        assert edge.min() > 200, f"something drawn reaches the {name} edge: it is cut there"


def flagged(*prompt_ids: str, distance: float = 0.01) -> dict:
    """A shard's diversity document in which ``prompt_ids`` are flagged."""
    return {
        "prompts": [
            {
                "prompt_id": p,
                "n_images": 2,
                "mean_distance": distance,
                "flag": True,
                "n_with_near_duplicate": 2,
            }
            for p in prompt_ids
        ]
    }


def test_the_prompts_flagged_for_low_diversity_get_their_sheets_first() -> None:
    a = document("a", [probabilities(0.1, 0.7, 0.1, 0.1)])
    b = labelled(document("b", [probabilities(0.1, 0.1, 0.8, 0.0)]), "cat")  # wrong: worst
    c = document("c", [probabilities(0.9, 0.1, 0.0, 0.0)])
    assert figures.sheet_prompts([a, b, c], 1) == {"b"}
    assert figures.sheet_prompts([a, b, c], 1, flagged("c")) == {"c"}
    assert figures.sheet_prompts([a, b, c], 2, flagged("c")) == {"b", "c"}
    assert figures.sheet_prompts([a, b, c], 0, flagged("c")) == set()
    assert figures.sheet_prompts([a, b, c], None, flagged("c")) == {"a", "b", "c"}
    unflagged = {"prompts": [{**flagged("a")["prompts"][0], "flag": False}]}
    assert figures.sheet_prompts([a, b, c], 1, unflagged) == {"b"}
