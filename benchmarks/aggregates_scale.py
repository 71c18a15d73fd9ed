"""summary, the summary page and manifest at a million rows: time and peak memory.

    .venv/bin/python benchmarks/aggregates_scale.py [--rows 1000000 100000]
        [--images-per-prompt 10] [--shards 100] [--workdir DIR] [--code DIR]

Writes synthetic prediction files (``--images-per-prompt`` images each, 3 labels, half of
them labelled, in ``--shards`` shard folders) and one small file per row standing for its
tensor, then times, each in a fresh process that reports its own peak RSS:
- summary (``sdcnn.reporting.summary.write_summary``): the CSV and JSON of every row;
- summary_page (``sdcnn.reporting.pages.write_summary_page`` from the CSV): a sample of the rows;
- manifest (``sdcnn.reporting.manifest.write_manifest``): sha256 and size of every row's file.
Prints seconds, microseconds a row and peak RSS for each size: linear with a small
constant means the same microseconds a row and a flat peak at every size.  ``--code DIR``
runs the steps of another checkout (its ``sdcnn`` package), e.g. an older commit's
(``git archive COMMIT sdcnn | tar -x -C DIR``), on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine

LABELS = ["circle", "square", "triangle"]

STEPS = {
    "summary": (
        "from sdcnn.reporting.summary import write_summary\n"
        "write_summary([str(p) for p in sorted(Path('predictions').iterdir())],"
        " 'summary.csv', 'summary.json')"
    ),
    "summary_page": (  # from the CSV where the code reads it (streamed), else the JSON
        "from sdcnn.reporting import pages\n"
        "streamed = hasattr(pages, 'read_summary_csv')\n"
        "pages.write_summary_page('summary.csv' if streamed else 'summary.json', 'summary.html')"
    ),
    "manifest": (
        "from sdcnn.reporting.manifest import write_manifest\n"
        "write_manifest('manifest.json', ['tensors', 'summary.csv'], [], '0' * 64)"
    ),
}
MEASURED = (
    "import resource, sys, time\nfrom pathlib import Path\n"
    "sys.path.insert(0, {code_dir!r})\n"
    "started = time.perf_counter()\n{code}\n"
    "print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def make_inputs(folder: Path, rows: int, per_prompt: int, shards: int) -> None:
    rng = random.Random(0)
    n_prompts = -(-rows // per_prompt)
    for prompt in range(n_prompts):
        shard = f"{prompt % shards + 1}-of-{shards}"
        prompt_id = f"p{prompt:07d}"
        label = LABELS[prompt % 3] if prompt % 2 == 0 else None
        images = []
        n = min(per_prompt, rows - prompt * per_prompt)
        tensors = folder / "tensors" / shard / prompt_id
        tensors.mkdir(parents=True)
        for index in range(n):
            weights = [rng.random() + 1e-3 for _ in LABELS]
            total = sum(weights)
            probabilities = {name: w / total for name, w in zip(LABELS, weights, strict=True)}
            top = max(probabilities, key=probabilities.__getitem__)
            image_id = f"{prompt_id}_{index:03d}"
            images.append(
                {
                    "image_id": image_id,
                    "tensor": f"results/tensors/{shard}/{image_id}.npy",
                    "tensor_sha256": "0" * 64,
                    "safety_flagged": None,
                    "label": label,
                    "split": None if label is None else ("holdout" if index % 4 == 3 else "train"),
                    "probabilities": probabilities,
                    "top_label": top,
                    "top_probability": probabilities[top],
                    "correct": None if label is None else top == label,
                }
            )
            with open(tensors / f"{image_id}.npy", "wb") as handle:
                handle.write(image_id.encode() * 8)
        document = {
            "schema": "sdcnn-predictions/1",
            "prompt_id": prompt_id,
            "backend": "torch",
            "device": "cpu",
            "labels": LABELS,
            "images": images,
        }
        path = folder / "predictions" / shard / f"{prompt_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document), encoding="utf-8")


def measure(folder: Path, code: str, code_dir: Path = REPO) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``code`` run in a fresh Python in ``folder``, with the
    ``sdcnn`` package of ``code_dir``."""
    script = MEASURED.replace("{code}", code).replace("{code_dir!r}", repr(str(code_dir)))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    seconds, rss_kb = result.stdout.split()[-2:]
    return float(seconds), float(rss_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--images-per-prompt", type=int, default=10)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--workdir", type=Path, help="where the inputs go (default: /tmp)")
    parser.add_argument("--code", type=Path, default=REPO, help="a checkout to measure")
    args = parser.parse_args()
    print(machine())
    print(f"code: {args.code}")
    baseline = measure(Path.cwd(), "pass")
    print(f"a bare Python that imports nothing more: peak RSS {baseline[1]:.0f} MB")
    for rows in args.rows:
        folder = Path(tempfile.mkdtemp(prefix="sdcnn-aggregates-", dir=args.workdir))
        try:
            started = time.perf_counter()
            make_inputs(folder, rows, args.images_per_prompt, args.shards)
            made = time.perf_counter() - started
            n_files = -(-rows // args.images_per_prompt)
            print(
                f"{rows} rows ({n_files} prediction files, {rows} tensor files; "
                f"made in {made:.1f} s):"
            )
            for step, code in STEPS.items():
                seconds, rss = measure(folder, code, args.code)
                sizes = {
                    "summary": "summary.csv",
                    "summary_page": "summary.html",
                    "manifest": "manifest.json",
                }
                size = (folder / sizes[step]).stat().st_size / 1e6
                print(
                    f"  {step:13s} {seconds:8.2f} s  {1e6 * seconds / rows:7.2f} us a row  "
                    f"peak RSS {rss:7.0f} MB  output {size:9.2f} MB"
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
