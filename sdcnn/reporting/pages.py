"""Self-contained HTML pages for the Snakemake report: the summary table and the run's info.

Snakemake's report shows an HTML result in a frame but offers a CSV only as a
download, so the summary table is also rendered here as a page people can read:
one row per image, the probabilities shaded by size.  Pages carry their own
CSS, load nothing, and hold no timestamp (same run, same bytes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import yaml

from sdcnn.core.fileio import write_bytes_atomic
from sdcnn.core.provenance import distribution_version
from sdcnn.reporting.triage import most_doubtful

NOT_INSTALLED = "not installed"
MAX_FILES_LISTED = 300
MAX_SUMMARY_ROWS = 1000  # a larger table is shown as a sample: its rows most worth a look

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1e293b;
       margin: 1.5rem; background: #fff; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
p.note { color: #475569; font-size: .85rem; margin: .2rem 0 1rem; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { padding: .25rem .55rem; border-bottom: 1px solid #e2e8f0; text-align: left; }
th { background: #f1f5f9; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.top { font-weight: 700; outline: 2px solid #059669; outline-offset: -2px; }
tr.first td { border-top: 2px solid #94a3b8; }
pre { background: #f8fafc; border: 1px solid #e2e8f0; padding: .8rem; font-size: .8rem;
      overflow: auto; }
code { font-size: .8rem; }
"""


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def shade(probability: float, lowest: float, highest: float) -> str:
    """A green background from pale (the table's lowest probability) to strong (its highest)."""
    spread = highest - lowest
    alpha = 0.05 + (0.6 * (probability - lowest) / spread if spread > 0 else 0.0)
    return f"background: rgba(5, 150, 105, {alpha:.3f})"


def accuracy_note(metrics: Mapping[str, Any] | None) -> str:
    """A sentence on the classifier's held-out accuracy ("" without labelled images)."""
    held = (metrics or {}).get("holdout") or {}
    if not held.get("n_images"):
        return ""
    right = round(held["accuracy"] * held["n_images"])
    return (
        f"<strong>Held-out accuracy {held['accuracy']:.3f}</strong>: {right} of "
        f"{held['n_images']} images the classifier never trained on got the label their "
        "prompt meant. "
    )


RIGHT_MARK = {True: "✓", False: "✗", None: ""}


def sampled_rows(
    rows: Sequence[Mapping[str, Any]], limit: int = MAX_SUMMARY_ROWS
) -> Sequence[Mapping[str, Any]]:
    """Every row up to ``limit``; beyond it the ``limit`` rows most worth a look
    (``doubt``), in the table's order."""
    if len(rows) <= limit:
        return rows
    return [rows[i] for i in most_doubtful(rows, limit)]


def summary_page(
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any] | None = None,
    limit: int = MAX_SUMMARY_ROWS,
    total: int | None = None,
) -> str:
    """The summary table as HTML: each image's label, split and correctness (labelled
    prompts), its top label and every label's probability; a table of more than
    ``limit`` rows shows its ``limit`` rows most worth a look, and says so, so that the
    page grows with what a person can read, not with the number of images.  ``total``:
    the table's number of rows when ``rows`` is already such a sample."""
    total = len(rows) if total is None else total
    rows = sampled_rows(rows, limit)
    labels = [column[2:] for column in columns if column.startswith("p_")]
    values = [row[f"p_{label}"] for row in rows for label in labels]
    lowest, highest = min(values, default=0.0), max(values, default=0.0)
    head = "".join(
        f"<th>{escape(name)}</th>"
        for name in ("prompt", "image", "meant", "split", "top label", "p(top)", "right")
    ) + "".join(f"<th>{escape(label)}</th>" for label in labels)
    lines, previous_prompt = [], None
    for row in rows:
        first = row["prompt_id"] != previous_prompt
        previous_prompt = row["prompt_id"]
        cells = [
            f"<td>{escape(row['prompt_id']) if first else ''}</td>",
            f"<td>{escape(row['image_id'])}</td>",
            f"<td>{escape(row.get('label') or '')}</td>",
            f"<td>{escape(row.get('split') or '')}</td>",
            f"<td>{escape(row['top_label'])}</td>",
            f'<td class="num">{row["top_probability"]:.3f}</td>',
            f"<td>{RIGHT_MARK[row.get('correct')]}</td>",
        ]
        for label in labels:
            value = row[f"p_{label}"]
            top = " top" if label == row["top_label"] else ""
            cells.append(
                f'<td class="num{top}" style="{shade(value, lowest, highest)}">{value:.3f}</td>'
            )
        row_class = ' class="first"' if first else ""
        lines.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    backends = sorted({f"{row['backend']} on {row['device']}" for row in rows})
    sample = ""
    if len(rows) < total:
        sample = (
            f"<strong>{len(rows):,} of the {total:,} images are shown</strong>: the wrong "
            "predictions first, then the least sure (every image is in the CSV). "
        )
    body = (
        "<h1>Predicted probabilities of every image</h1>\n"
        f'<p class="note">{accuracy_note(metrics)}{sample}'
        f"{total} images; classifier: {escape(', '.join(backends))}. "
        "<em>meant</em> is the label of the image's prompt (when it has one), ✓ or ✗ whether "
        "the top label is it. The framed cell is each image's top label; the shading runs "
        "from the table's lowest probability (pale) to its highest (green). "
        "The same table is <code>results/summary.csv</code> and "
        "<code>results/summary.json</code>.</p>\n"
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(lines)
        + "\n</tbody>\n</table>"
    )
    return page("sdcnn summary", body)


def write_summary_page(summary: str | Path, output_path: str | Path) -> None:
    """The summary page of ``results/summary.json`` or, streamed in memory that does not
    grow with the rows, of ``results/summary.csv`` (the same table)."""
    if Path(summary).suffix == ".csv":
        columns, rows, total, metrics = read_summary_csv(summary)
        html = summary_page(columns, rows, metrics, total=total)
    else:
        table = json.loads(Path(summary).read_text(encoding="utf-8"))
        html = summary_page(table["columns"], table["rows"], table.get("metrics"))
    write_bytes_atomic(output_path, html.encode("utf-8"))


CSV_BOOLEANS = {"true": True, "false": False, "": None}


def csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A summary.csv row with the JSON's values: numbers, true/false, None for empty."""
    typed: dict[str, Any] = dict(row)
    for key in ("label", "split"):
        typed[key] = row[key] or None
    for key in ("correct", "safety_flagged"):
        typed[key] = CSV_BOOLEANS.get(row[key], row[key])
    for key, value in row.items():
        if key == "top_probability" or key.startswith("p_"):
            typed[key] = float(value)
    return typed


def read_summary_csv(
    path: str | Path, limit: int = MAX_SUMMARY_ROWS
) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
    """(columns, the ``limit`` rows most worth a look in the table's order, the number of
    rows, the metrics) of summary.csv, one row in memory at a time beyond the sample."""
    import csv
    import heapq

    from sdcnn.reporting.summary import SplitCounter
    from sdcnn.reporting.triage import doubt

    counter = SplitCounter()
    heap: list[tuple[tuple[bool, float], int, dict[str, Any]]] = []  # the worst kept, negated
    total = 0
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        for total, raw in enumerate(reader, start=1):
            row = csv_row(raw)
            counter.add(row)
            worthy, sure = doubt(row)
            entry = ((not worthy, -sure), -total, row)  # the heap's top: the least worth a look
            if len(heap) < limit:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)
    labels = [column[2:] for column in columns if column.startswith("p_")]
    rows = [row for _, _, row in sorted(heap, key=lambda entry: -entry[1])]
    return columns, rows, total, counter.metrics(labels)


def _versions_table(versions: Mapping[str, str | None]) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(name)}</td><td><code>{escape(version or NOT_INSTALLED)}</code></td></tr>"
        for name, version in versions.items()
    )
    return (
        "<table>\n<thead><tr><th>package</th><th>version</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody>\n</table>"
    )


def _files_table(files: Sequence[Mapping[str, Any]]) -> str:
    rows = "\n".join(
        f"<tr><td><code>{escape(entry['path'])}</code></td>"
        f'<td class="num">{entry["size"]:,}</td>'
        f"<td><code>{escape(entry['sha256'])}</code></td></tr>"
        for entry in files[:MAX_FILES_LISTED]
    )
    more = len(files) - MAX_FILES_LISTED
    if more > 0:
        rows += f'\n<tr><td colspan="3">… and {more:,} more (all in the manifest)</td></tr>'
    return (
        "<table>\n<thead><tr><th>file</th><th>bytes</th><th>sha256</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody>\n</table>"
    )


def run_info_page(
    config: Mapping[str, Any], manifest: Mapping[str, Any], drawing: Mapping[str, str | None]
) -> str:
    """How the results were made: the config, and what ``results/manifest.json`` records
    (its hash, the backends, the versions, every data file), plus what drew the pictures."""
    config_text = yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
    files = manifest["files"]
    total = sum(entry["size"] for entry in files)
    backends = ", ".join(manifest["backends"]) or "none"
    body = (
        "<h1>How these results were made</h1>\n"
        '<p class="note">From <code>results/manifest.json</code> and the configuration it was '
        "made with.</p>\n"
        "<h2>Configuration</h2>\n"
        '<p class="note">After validation, with every default filled in (the image-store '
        "settings, which never change an output, left out). Its sha256 (canonical JSON): "
        f"<code>{escape(manifest['config_sha256'])}</code>.</p>\n"
        f"<pre>{escape(config_text)}</pre>\n"
        f"<h2>Software</h2>\n"
        f'<p class="note">Classifier backend: {escape(backends)}. Versions recorded by the '
        "manifest step:</p>\n"
        f"{_versions_table(manifest['versions'])}\n"
        '<p class="note">The charts and contact sheets were drawn with:</p>\n'
        f"{_versions_table(drawing)}\n"
        f"<h2>Data files</h2>\n"
        f'<p class="note">{len(files):,} files, {total:,} bytes in all.</p>\n'
        f"<details><summary>every file with its size and sha256</summary>\n"
        f"{_files_table(files)}\n</details>"
    )
    return page("sdcnn run info", body)


def write_run_info(
    config: Mapping[str, Any], manifest_path: str | Path, output_path: str | Path
) -> None:
    """The run-info page, from the manifest and the config (versions of what drew the plots)."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    drawing = {"matplotlib": distribution_version(("matplotlib",))}
    write_bytes_atomic(output_path, run_info_page(config, manifest, drawing).encode("utf-8"))
