"""Pictures of a prompt's results: a probability chart per image and a contact sheet.

Drawn with matplotlib's object API (``Figure``, rendered by Agg), never
``pyplot``: no display, no GUI backend, no global figure state, so it runs the
same on a headless node as on a laptop.  Same inputs, same PNG bytes.  Every picture of
the run (charts, contact sheets, training curve, confusion matrix) shares one style
(``figure``, ``png_bytes``, ``TEXT_COLOUR``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdcnn.core.errors import StepError
from sdcnn.core.fileio import atomic_directory
from sdcnn.core.naming import image_ids
from sdcnn.core.png_text import SEED
from sdcnn.core.shards import ShardLayout
from sdcnn.reporting.triage import doubt, most_doubtful

TOP_K = 3  # labels per image on a contact sheet
MAX_BARS = 20  # a chart shows every label up to this many, else the most probable ones
DPI = 100
MAX_PIXELS = 40_000_000  # a contact sheet of very many images is drawn smaller, not refused
MAX_SIDE = 30_000  # pixels; Agg's own limit is 2**16

TOP_COLOUR = "#059669"  # the most probable label
BAR_COLOUR = "#94a3b8"
CHANCE_COLOUR = "#475569"
TEXT_COLOUR = "#1e293b"


@dataclass(frozen=True)
class SheetRow:
    """One image on a contact sheet."""

    image_id: str
    original: np.ndarray  # H x W x 3, uint8
    preprocessed: np.ndarray  # S x S (grayscale) or S x S x 3, uint8
    seed: str  # from the PNG's metadata; "" when absent
    top: list[tuple[str, float]]  # the TOP_K most probable labels, most probable first


# ---- reading a prompt's results


def read_checked_predictions(path: str | Path, image_ids: Sequence[str]) -> dict[str, Any]:
    """A prediction document, checked to hold exactly ``image_ids`` in that order."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        found = [image["image_id"] for image in document["images"]]
        document["labels"]  # noqa: B018 (must be there)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StepError(f"{path}: not a readable prediction file: {error}") from error
    if found != list(image_ids):
        raise StepError(f"{path}: holds images {found}, expected {list(image_ids)}")
    return document


def top_labels(probabilities: dict[str, float], k: int = TOP_K) -> list[tuple[str, float]]:
    """The ``k`` most probable labels, most probable first; ties keep the labels' order."""
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return ranked[:k]


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """An image file as uint8 pixels, and the ``seed`` of its PNG metadata ("" if none)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            seed = str(getattr(image, "text", {}).get(SEED, ""))
            pixels = np.asarray(image.convert("L" if image.mode in ("L", "I;16") else "RGB"))
    except OSError as error:
        raise StepError(f"{path}: not a readable image: {error}") from error
    return pixels, seed


def sheet_rows(
    document: dict[str, Any], image_dir: str | Path, preview_dir: str | Path
) -> list[SheetRow]:
    rows = []
    for image in document["images"]:
        name = f"{image['image_id']}.png"
        original, seed = read_rgb(Path(image_dir) / name)
        preprocessed, _ = read_rgb(Path(preview_dir) / name)
        rows.append(
            SheetRow(
                image["image_id"], original, preprocessed, seed, top_labels(image["probabilities"])
            )
        )
    return rows


# ---- drawing


def figure(width_in: float, height_in: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")


def png_bytes(fig: Any, dpi: float = DPI, *, fit: bool = False) -> bytes:
    """``fig`` as a PNG; ``fit``: cropped or grown to what is drawn (labels of any length)."""
    buffer = io.BytesIO()
    fitted = {"bbox_inches": "tight", "pad_inches": 0.08} if fit else {}
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=fig.get_facecolor(), **fitted)
    return buffer.getvalue()


def chart_labels(probabilities: dict[str, float]) -> tuple[list[str], str]:
    """The labels a chart shows (top to bottom) and the note that says which they are."""
    if len(probabilities) <= MAX_BARS:
        return list(probabilities), f"all {len(probabilities)} labels"
    shown = [label for label, _ in top_labels(probabilities, MAX_BARS)]
    return shown, f"the {MAX_BARS} most probable of {len(probabilities)} labels"


def probability_figure(image_id: str, probabilities: dict[str, float]) -> Any:
    """A horizontal bar chart of one image's probabilities; the most probable bar stands out."""
    labels, which = chart_labels(probabilities)
    values = [probabilities[label] for label in labels]
    best = max(probabilities, key=probabilities.get)
    chance = 1.0 / len(probabilities)
    fig = figure(6.4, 1.3 + 0.3 * len(labels))
    ax = fig.add_axes((0.22, 0.75 / fig.get_figheight(), 0.7, 1 - 1.3 / fig.get_figheight()))
    positions = np.arange(len(labels))[::-1]  # first label on top
    colours = [TOP_COLOUR if label == best else BAR_COLOUR for label in labels]
    ax.barh(positions, values, color=colours, height=0.7)
    ax.set_yticks(positions, labels, color=TEXT_COLOUR)
    right = min(1.0, max(values + [chance]) * 1.3)
    ax.set_xlim(0, right)
    for position, value in zip(positions, values, strict=True):
        ax.text(
            value + right * 0.01,
            position,
            f"{value:.3f}",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},  # over the chance line
            zorder=3,
        )
    ax.axvline(chance, color=CHANCE_COLOUR, linestyle="--", linewidth=1, zorder=2)
    ax.text(chance, positions[0] + 0.6, f" chance 1/{len(probabilities)}", fontsize=7, va="bottom")
    ax.set_xlabel("predicted probability", color=TEXT_COLOUR)
    ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(
        f"{image_id}: {best} ({probabilities[best]:.3f})",
        x=0.02,
        ha="left",
        fontsize=12,
        fontweight="bold",
        color=TEXT_COLOUR,
    )
    fig.text(0.02, 1 - 0.5 / fig.get_figheight(), which, fontsize=8, color=CHANCE_COLOUR)
    return fig


def sheet_grid(n_images: int) -> tuple[int, int]:
    """(columns, rows) of images: one column up to 4 images, then roughly square."""
    columns = max(1, math.ceil(math.sqrt(n_images / 4)))
    return columns, math.ceil(n_images / columns)


def sheet_dpi(width_in: float, height_in: float) -> float:
    """DPI, lowered only when the sheet would be too large an image."""
    budget = math.sqrt(MAX_PIXELS / (width_in * height_in))
    return min(DPI, budget, MAX_SIDE / max(width_in, height_in))


def _draw_image(ax: Any, pixels: np.ndarray, title: str) -> None:
    grey = pixels.ndim == 2
    ax.imshow(pixels, cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, color=TEXT_COLOUR)


def _draw_top(ax: Any, row: SheetRow, right: float, chance: float) -> None:
    labels = [label for label, _ in row.top]
    values = [p for _, p in row.top]
    positions = np.arange(len(labels))[::-1]
    colours = [TOP_COLOUR] + [BAR_COLOUR] * (len(labels) - 1)
    ax.barh(positions, values, color=colours, height=0.6)
    for position, label, value in zip(positions, labels, values, strict=True):
        ax.text(right * 0.02, position, f"{label}  {value:.3f}", va="center", fontsize=9)
    ax.axvline(chance, color=CHANCE_COLOUR, linestyle="--", linewidth=0.8)
    ax.set_xlim(0, right)
    ax.set_ylim(-0.6, TOP_K - 0.4)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=7)
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.set_title(f"top {len(labels)} labels", fontsize=8, color=TEXT_COLOUR)


def contact_sheet_figure(
    prompt_id: str,
    prompt_text: str,
    negative_prompt: str,
    rows: Sequence[SheetRow],
    n_labels: int,
    shown_of: int | None = None,
) -> Any:
    """Per image: the generated picture, the preprocessed one, the top labels as bars."""
    columns, grid_rows = sheet_grid(len(rows))
    cell_w, cell_h, header, footer = 9.0, 2.4, 1.0, 0.2
    fig = figure(cell_w * columns, header + cell_h * grid_rows + footer)
    height = fig.get_figheight()
    chance = 1.0 / n_labels
    right = min(1.0, max([p for row in rows for _, p in row.top] + [chance]) * 1.25)
    for index, row in enumerate(rows):
        column, line = index % columns, index // columns
        left = column / columns
        bottom = (footer + (grid_rows - line - 1) * cell_h) / height
        box_h = (cell_h - 0.45) / height
        width = 1 / columns
        size = (row.original.shape[1], row.original.shape[0])
        ax = fig.add_axes((left + 0.02 * width, bottom + 0.1 / height, 0.24 * width, box_h))
        _draw_image(ax, row.original, f"{row.image_id}  {size[0]}×{size[1]}")
        if row.seed:
            ax.set_xlabel(f"seed {row.seed}", fontsize=7, color=CHANCE_COLOUR)
        side = row.preprocessed.shape[0]
        kind = "grayscale" if row.preprocessed.ndim == 2 else "RGB"
        ax = fig.add_axes((left + 0.29 * width, bottom + 0.1 / height, 0.24 * width, box_h))
        _draw_image(ax, row.preprocessed, f"preprocessed {side}×{side} {kind}")
        ax = fig.add_axes(
            (left + 0.58 * width, bottom + 0.3 / height, 0.38 * width, box_h - 0.2 / height)
        )
        _draw_top(ax, row, right, chance)
    title = f"{prompt_id}: “{prompt_text}”"
    fig.text(0.01, 1 - 0.35 / height, title, fontsize=13, fontweight="bold", color=TEXT_COLOUR)
    details = f"{len(rows)} image{'s' if len(rows) != 1 else ''} · {n_labels} labels"
    if shown_of is not None:
        details = (
            f"{len(rows)} of {shown_of} images (the wrong, then the least sure) · {n_labels} labels"
        )
    if negative_prompt:
        details += f" · negative prompt: “{negative_prompt}”"
    details += " · dashed line: chance (1/number of labels)"
    fig.text(0.01, 1 - 0.7 / height, details, fontsize=9, color=CHANCE_COLOUR)
    return fig


def shorten(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---- the steps


def draw_probability_charts(document: dict[str, Any], folder: Path) -> list[Path]:
    """One bar chart PNG per image of ``document``, ``<image_id>.png`` in ``folder``."""
    written = []
    for image in document["images"]:
        path = folder / f"{image['image_id']}.png"
        path.write_bytes(png_bytes(probability_figure(image["image_id"], image["probabilities"])))
        written.append(path)
    return written


def contact_sheet_png(
    document: dict[str, Any],
    prompt_text: str,
    negative_prompt: str,
    image_dir: str | Path,
    preview_dir: str | Path,
) -> bytes:
    """The contact sheet of one prompt's prediction document, as PNG bytes."""
    rows = sheet_rows(document, image_dir, preview_dir)
    fig = contact_sheet_figure(
        document["prompt_id"],
        shorten(prompt_text),
        shorten(negative_prompt),
        rows,
        len(document["labels"]),
        document.get("shown_of"),
    )
    return png_bytes(fig, sheet_dpi(fig.get_figwidth(), fig.get_figheight()))


def worst_images(
    documents: Sequence[dict[str, Any]], limit: int | None
) -> list[tuple[str, dict[str, Any]]]:
    """(prompt_id, image) of the ``limit`` images most worth a look (``doubt``), in the
    documents' and images' order; every image when ``limit`` is None."""
    pairs = [(doc["prompt_id"], image) for doc in documents for image in doc["images"]]
    return [pairs[i] for i in most_doubtful([image for _, image in pairs], limit)]


def worst_prompts(documents: Sequence[dict[str, Any]], limit: int | None) -> list[str]:
    """The ids of the ``limit`` prompts whose worst image is most worth a look (``doubt``),
    in the documents' order; every prompt when ``limit`` is None."""
    worst = [
        min(document["images"], key=doubt, default={"top_probability": 1.0})
        for document in documents
    ]
    return [documents[i]["prompt_id"] for i in most_doubtful(worst, limit)]


def sheet_prompts(
    documents: Sequence[dict[str, Any]],
    limit: int | None,
    diversity: Mapping[str, Any] | None = None,
) -> set[str]:
    """The prompts that get a contact sheet: those ``diversity`` flags (the least diverse
    first), then those whose worst image is most worth a look, ``limit`` in all (None:
    every prompt)."""
    from sdcnn.evaluate.diversity_results import least_diverse

    flagged = [
        result["prompt_id"]
        for result in least_diverse(diversity["prompts"] if diversity else [], len(documents))
        if result["flag"]
    ]
    chosen = flagged if limit is None else flagged[:limit]
    room = None if limit is None else limit - len(chosen)
    others = [document for document in documents if document["prompt_id"] not in chosen]
    return {*chosen, *worst_prompts(others, room)}


def sheet_document(document: dict[str, Any], limit: int | None) -> dict[str, Any]:
    """``document`` with at most ``limit`` images, those most worth a look, in their order
    (``shown_of`` says how many it had); the document itself when they all fit."""
    images = document["images"]
    if limit is None or len(images) <= limit:
        return document
    kept = [images[i] for i in most_doubtful(images, limit)]
    return {**document, "images": kept, "shown_of": len(images)}


def write_shard_figures(
    *,
    prompts: Sequence[dict[str, Any]],
    layout: ShardLayout,
    predictions: str | Path,
    image_dir: str | Path,
    preview_dir: str | Path,
    charts_dir: str | Path,
    contact_sheets: str | Path,
    charts: int | None = None,
    sheets: int | None = None,
    sheet_images: int | None = None,
    diversity: Mapping[str, Any] | None = None,
) -> list[str]:
    """A shard's charts and contact sheets (one matplotlib for all): both outputs appear
    once every picture is drawn.  What is drawn grows with what a person can look at, not
    with the number of images: probability charts for the ``charts`` images most worth a
    look (``doubt``), contact sheets for the ``sheets`` prompts whose worst image is, each
    with at most ``sheet_images`` images (None: no limit).  Without shards (``layout`` not
    sharded) the shard is one prompt, whose contact sheet is always drawn.  Prompts that
    ``diversity`` (the shard's ``sdcnn-diversity/1`` document) flags as of low diversity get
    theirs first.  Returns one console line per prompt."""
    documents = [
        read_checked_predictions(
            layout.file(predictions, prompt["prompt_id"], ".json"),
            image_ids(prompt["prompt_id"], prompt["n_images"]),
        )
        for prompt in prompts
    ]
    drawn = sheet_prompts(documents, sheets if layout.sharded else None, diversity)
    lines = []
    with (
        atomic_directory(charts_dir) as charts_tmp,
        layout.files(contact_sheets, ".png") as sheet_of,
    ):
        for prompt_id, image in worst_images(documents, charts):
            folder = layout.folder(charts_tmp, prompt_id)
            folder.mkdir(exist_ok=True)
            draw_probability_charts({"images": [image]}, folder)
        for prompt, document in zip(prompts, documents, strict=True):
            prompt_id = prompt["prompt_id"]
            sheet = None
            if prompt_id in drawn:
                sheet_of(prompt_id).write_bytes(
                    contact_sheet_png(
                        sheet_document(document, sheet_images),
                        prompt["text"],
                        prompt["negative_prompt"],
                        layout.folder(image_dir, prompt_id),
                        layout.folder(preview_dir, prompt_id),
                    )
                )
                sheet = layout.file(contact_sheets, prompt_id, ".png")
            lines.append(prompt_summary_line(document, sheet))
    return lines


def prompt_summary_line(document: dict[str, Any], sheet_path: str | Path | None) -> str:
    """One console line for a prompt: how many images, which labels won, where to look."""
    images = document["images"]
    winners: dict[str, int] = {}
    for image in images:
        winners[image["top_label"]] = winners.get(image["top_label"], 0) + 1
    counts = ", ".join(
        f"{label} ×{count}" for label, count in sorted(winners.items(), key=lambda i: -i[1])
    )
    surest = max(images, key=lambda image: image["top_probability"])
    return (
        f"{document['prompt_id']}: {len(images)} image{'s' if len(images) != 1 else ''}, "
        f"top: {counts}; surest {surest['image_id']} {surest['top_label']} "
        f"({surest['top_probability']:.3f}); "
        + (f"contact sheet {sheet_path}" if sheet_path is not None else "no contact sheet")
    )


# ---- training


def training_curve_png(curve: Sequence[dict[str, Any]]) -> bytes:
    """Loss and accuracies per epoch (train_classifier's curve) as a PNG."""
    epochs = [point["epoch"] for point in curve]
    fig = figure(7.0, 3.2)
    loss_ax = fig.add_axes((0.08, 0.16, 0.38, 0.68))
    loss_ax.plot(epochs, [point["loss"] for point in curve], color=TEXT_COLOUR, marker=".")
    loss_ax.set_xlabel("epoch", color=TEXT_COLOUR)
    loss_ax.set_title("training loss (cross-entropy)", fontsize=9, color=TEXT_COLOUR)
    accuracy_ax = fig.add_axes((0.58, 0.16, 0.38, 0.68))
    for key, colour, name in (
        ("train_accuracy", BAR_COLOUR, "train"),
        ("holdout_accuracy", TOP_COLOUR, "held out"),
    ):
        values = [point[key] for point in curve]
        if any(value is not None for value in values):
            accuracy_ax.plot(epochs, values, color=colour, marker=".", label=name)
    accuracy_ax.set_ylim(0, 1.02)
    accuracy_ax.set_xlabel("epoch", color=TEXT_COLOUR)
    accuracy_ax.set_title("accuracy", fontsize=9, color=TEXT_COLOUR)
    accuracy_ax.legend(fontsize=8, loc="lower right")
    for ax in (loss_ax, accuracy_ax):
        ax.spines[["top", "right"]].set_visible(False)
    held = curve[-1]["holdout_accuracy"]
    title = f"training: {len(curve)} epochs, final held-out accuracy {_score(held)}"
    return _titled_png(fig, title, fontsize=11)


def confusion_matrix_png(
    holdout: dict[str, Any], *, title: str | None = None, meant: str = "meant (prompt label)"
) -> bytes:
    """A confusion matrix (``classification_metrics``'; rows: meant, columns: predicted) as
    a PNG; by default the held-out images' title."""
    labels = holdout["confusion_matrix"]["labels"]
    counts = np.array(holdout["confusion_matrix"]["counts"])
    side = 1.2 + 0.55 * len(labels)
    fig = figure(side + 1.2, side)
    ax = fig.add_axes((0.28, 0.22, 0.64, 0.62))
    ax.imshow(counts, cmap="Greens", vmin=0, vmax=max(1, int(counts.max())))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted", color=TEXT_COLOUR)
    ax.set_ylabel(meant, color=TEXT_COLOUR)
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        ax.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=9,
            color="white" if dark else TEXT_COLOUR,
        )
    if title is None:
        title = f"held-out images: {holdout['n_images']}, accuracy {_score(holdout['accuracy'])}"
    return _titled_png(fig, title, fontsize=10, fit=True)  # rotated labels of any length


def evaluation_title(evaluation: dict[str, Any]) -> str:
    """The real images' figure title: their accuracy beside the held-out one, and the gap."""
    held = evaluation["holdout_accuracy"]
    gap = "n/a" if evaluation["gap"] is None else f"{evaluation['gap']:+.3f}"
    return (
        f"real images: {evaluation['n_labelled']}, accuracy {_score(evaluation['real_accuracy'])}"
        f"\nheld-out synthetic {_score(held)}, gap {gap}"
    )


def write_evaluation_figure(evaluation: dict[str, Any], output: str | Path) -> None:
    """The real images' confusion matrix (``sdcnn-evaluation/1``'s ``real``) as a PNG."""
    from sdcnn.core.fileio import write_bytes_atomic

    png = confusion_matrix_png(
        evaluation["real"], title=evaluation_title(evaluation), meant="meant (real label)"
    )
    write_bytes_atomic(output, png)


def write_training_figures(
    metrics: dict[str, Any], curve: str | Path, confusion: str | Path
) -> None:
    """Write train_classifier's two pictures from its metrics document: the per-epoch
    ``curve`` and the held-out ``confusion`` matrix."""
    from sdcnn.core.fileio import write_bytes_atomic

    write_bytes_atomic(curve, training_curve_png(metrics["curve"]))
    write_bytes_atomic(confusion, confusion_matrix_png(metrics["holdout"]))


def _score(accuracy: float | None) -> str:
    return "n/a" if accuracy is None else f"{accuracy:.3f}"


def _titled_png(fig: Any, title: str, fontsize: float, fit: bool = False) -> bytes:
    """A training figure with its bold title at the top left, as a PNG."""
    fig.suptitle(title, x=0.02, ha="left", fontsize=fontsize, fontweight="bold", color=TEXT_COLOUR)
    return png_bytes(fig, fit=fit)
