"""How long ``snakemake -n`` takes for large configs, and how much memory it needs.

    .venv/bin/python benchmarks/dry_run_scale.py [--prompts 1000] [--images 10] [--shards 10]
        [--huge 100000] [--huge-shards 100] [--repeats 3]

Goals: 1,000 prompts x 10 images <= 2 s; 100,000 prompts x 10 images (one million images)
in 100 shards <= 5x a 1-prompt dry run. Every config is a prompt sheet (a mapping of 100,000
prompts in YAML would spend most of the time in the YAML parser), timed on a fresh copy of
the workflow (nothing built yet: every job is planned), with the peak RSS of the Snakemake
process. For scale, it also times Snakemake's own floor: a bare workflow of the 1,000-prompt
DAG without shards (per prompt: generate -> preprocess -> predict -> figures, no log,
params, conda or report), once with ``shell:`` rules and once with ``script:`` rules.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from common import (
    REPO,
    copy_workflow,
    describe,
    dry_run_with_rss,
    machine,
    snakemake,
    timed,
)


def sheet_config(folder: Path, n_prompts: int, n_images: int, shards: int | None) -> Path:
    """A copy of the workflow whose config reads a sheet of ``n_prompts`` prompts."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update({"prompts": "prompts.tsv", "shards": shards})
    config["classifier"]["weights"] = "glorot"  # the sheet's prompts have no labels
    workdir = copy_workflow(folder, config)
    rows = "".join(f"prompt{i:06d}\tprompt number {i}\t{n_images}\n" for i in range(n_prompts))
    (workdir / "prompts.tsv").write_text("prompt_id\ttext\tn_images\n" + rows, encoding="utf-8")
    return workdir


def measured(workdir: Path, repeats: int) -> tuple[list[float], float]:
    runs = [dry_run_with_rss(workdir) for _ in range(repeats)]
    return [seconds for seconds, _ in runs], max(rss for _, rss in runs)


BARE_WORKFLOW = """\
PROMPTS = [f"prompt{{i:05d}}" for i in range({n_prompts})]


rule all:
    input:
        expand("results/contact_sheets/{{prompt}}.png", prompt=PROMPTS),


rule generate:
    output:
        directory("results/images/{{prompt}}"),
    {action}


rule preprocess:
    input:
        "results/images/{{prompt}}",
    output:
        directory("results/tensors/{{prompt}}"),
    {action}


rule predict:
    input:
        "results/tensors/{{prompt}}",
    output:
        "results/predictions/{{prompt}}.json",
    {action}


rule figures:
    input:
        "results/images/{{prompt}}",
        "results/predictions/{{prompt}}.json",
    output:
        "results/contact_sheets/{{prompt}}.png",
    {action}
"""


def bare_workflow(folder: Path, n_prompts: int, action: str) -> Path:
    """Snakemake's floor: the workflow's DAG shape with nothing else in the rules."""
    folder.mkdir(parents=True)
    (folder / "step.py").write_text("")
    (folder / "Snakefile").write_text(BARE_WORKFLOW.format(n_prompts=n_prompts, action=action))
    return folder


def job_table(output: str) -> str:
    """The first "Job stats" table of a dry run's output."""
    lines = output.splitlines()
    start = lines.index("Job stats:")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
    return "\n".join(lines[start : end + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--huge", type=int, default=100_000, help="prompts of the large case")
    parser.add_argument("--huge-shards", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "1 prompt": (1, None),
        f"{args.prompts} prompts, no shards": (args.prompts, None),
        f"{args.prompts} prompts, {args.shards} shards": (args.prompts, args.shards),
        f"{args.huge} prompts, {args.huge_shards} shards": (args.huge, args.huge_shards),
    }
    results, tables = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, (n_prompts, shards)) in enumerate(cases.items()):
            workdir = sheet_config(Path(scratch) / f"case{index}", n_prompts, args.images, shards)
            tables[name] = job_table(snakemake(workdir, "-n", "--quiet", "rules").stdout)
            results[name] = measured(workdir, args.repeats)
        floors = {}
        for kind, action in (
            ("shell", 'shell:\n        "true"'),
            ("script", 'script:\n        "step.py"'),
        ):
            bare = bare_workflow(Path(scratch) / kind, args.prompts, action)
            floors[kind] = timed(lambda bare=bare: snakemake(bare, "-n", "--quiet"), args.repeats)
    one = min(results["1 prompt"][0])
    print(machine())
    print(f"snakemake -n --quiet, every prompt {args.images} images (a sheet), nothing built yet:")
    for name, (times, rss) in results.items():
        jobs = tables[name].splitlines()[-1].split()[-1]
        print(
            f"  {name:28s} {jobs:>6s} jobs  {describe(times)}  {min(times) / one:5.2f}x 1 prompt"
            f"  peak RSS {rss:6.0f} MB"
        )
    print(
        f"goals: {args.prompts} prompts <= 2 s; {args.huge} prompts in {args.huge_shards} "
        "shards <= 5x 1 prompt"
    )
    print(f"jobs of the {args.prompts}-prompt sharded case:")
    print(tables[f"{args.prompts} prompts, {args.shards} shards"])
    print(f"Snakemake's floor, {4 * args.prompts + 1} jobs (the unsharded DAG) with bare rules:")
    for kind, runs in floors.items():
        print(f"  {kind + ':':7s} rules only               {describe(runs)}")


if __name__ == "__main__":
    main()
