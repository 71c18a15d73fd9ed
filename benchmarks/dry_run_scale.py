"""How long ``snakemake -n`` takes for a large config (goal: <= 5 s for 1,000 prompts x 10 images).

    .venv/bin/python benchmarks/dry_run_scale.py [--prompts 1000] [--images 10] [--repeats 3]

Times a plain dry run (which prints every job) and a quiet one, on a fresh copy
of the workflow (nothing built yet: every job is planned).  For scale, it also
times Snakemake's own floor: a bare workflow of the same shape (per prompt:
generate -> preprocess -> predict -> figures, no log, params, conda or report),
once with ``shell:`` rules and once with ``script:`` rules.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from common import REPO, copy_workflow, describe, machine, snakemake, timed


def large_config(n_prompts: int, n_images: int) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["prompts"] = {
        f"prompt{i:05d}": {"text": f"prompt number {i}", "n_images": n_images}
        for i in range(n_prompts)
    }
    return config


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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = copy_workflow(Path(scratch) / "large", large_config(args.prompts, args.images))
        jobs = job_table(snakemake(workdir, "-n", "--quiet", "rules").stdout)
        plain = timed(lambda: snakemake(workdir, "-n"), args.repeats)
        quiet = timed(lambda: snakemake(workdir, "-n", "--quiet"), args.repeats)
        until = timed(
            lambda: snakemake(workdir, "-n", "--quiet", "--until", "predict"), args.repeats
        )
        small = copy_workflow(Path(scratch) / "one", large_config(1, args.images))
        fixed = timed(lambda: snakemake(small, "-n", "--quiet"), args.repeats)
        floors = {}
        for kind, action in (
            ("shell", 'shell:\n        "true"'),
            ("script", 'script:\n        "step.py"'),
        ):
            bare = bare_workflow(Path(scratch) / kind, args.prompts, action)
            floors[kind] = timed(lambda bare=bare: snakemake(bare, "-n", "--quiet"), args.repeats)
    n_jobs = int(jobs.splitlines()[-1].split()[-1])
    per_job = (min(quiet) - min(fixed)) / (n_jobs - 9) * 1000
    print(machine())
    print(f"dry run, {args.prompts} prompts x {args.images} images")
    print(jobs)
    print(f"snakemake -n                          {describe(plain)}")
    print(f"snakemake -n --quiet                  {describe(quiet)}")
    print(f"snakemake -n --quiet --until predict  {describe(until)}  (3 jobs a prompt)")
    print(f"the same workflow with 1 prompt       {describe(fixed)}  (start-up, parsing)")
    print(f"=> about {per_job:.2f} ms of Snakemake per job; goal: <= 5 s")
    print(f"Snakemake's floor, the same DAG shape ({4 * args.prompts + 1} jobs) with bare rules:")
    for kind, runs in floors.items():
        print(f"  {kind + ':':7s} rules only               {describe(runs)}")


if __name__ == "__main__":
    main()
