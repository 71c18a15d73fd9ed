"""Report pages (sdcnn/reporting/pages.py), on small made-up data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from sdcnn.core.provenance import config_sha256
from sdcnn.reporting.pages import run_info_page, summary_page
from tests.support.charts import LABELS, document, probabilities


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


def test_a_large_summary_page_shows_a_sample_of_the_rows_most_worth_a_look(
    tmp_path: Path,
) -> None:
    from sdcnn.reporting.pages import read_summary_csv, write_summary_page
    from sdcnn.reporting.summary import write_summary

    rng = np.random.default_rng(2)
    for k in range(6):
        rows = [probabilities(*rng.dirichlet([1.0] * 4)) for _ in range(5)]
        doc = document(f"q{k}", rows)
        doc.update(backend="torch", device="cpu")
        (tmp_path / f"q{k}.json").write_text(json.dumps(doc))
    write_summary([tmp_path], str(tmp_path / "s.csv"), str(tmp_path / "s.json"))
    table = json.loads((tmp_path / "s.json").read_text())
    least_sure = sorted(table["rows"], key=lambda row: row["top_probability"])[:7]
    page = summary_page(table["columns"], table["rows"], table["metrics"], limit=7)
    assert "7 of the 30 images are shown" in page and page.count("<tr") == 8
    for row in table["rows"]:
        assert (f"<td>{row['image_id']}</td>" in page) == (row in least_sure)
    columns, sample, total, metrics = read_summary_csv(tmp_path / "s.csv", limit=7)
    assert (columns, total, metrics) == (table["columns"], 30, table["metrics"])
    assert sample == [row for row in table["rows"] if row in least_sure]  # the JSON's values
    assert summary_page(columns, sample, metrics, limit=7, total=total) == page
    write_summary_page(tmp_path / "s.csv", tmp_path / "a.html")  # under the limit: every row
    write_summary_page(tmp_path / "s.json", tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert "images are shown" not in (tmp_path / "a.html").read_text()
