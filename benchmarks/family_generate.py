"""Every family's generate step against a plain diffusers loop in one process (goal: <= 1.1x).

    .venv/bin/python benchmarks/family_generate.py [--families sd1,sd3,...] [--images 48]
        [--repeats 3] [--steps 4] [--batch-size 4] [--guidance 6.0] [--threads 1]

For each family of tests/support/families.py (a tiny random-weight pipeline, saved as a
folder ``DiffusionPipeline.from_pretrained`` loads), each repeat runs, one after the other so
that the machine's load hits both alike:
(a) the workflow's generate step: a fresh copy of the workflow with one prompt x N images,
    ``model.source`` the folder, the native size, the model's own scheduler
    (``scheduler: default``), the image store off, and ``snakemake --cores 1`` asked for that
    prompt's images only: the generate job's time from its benchmark TSV (``s``), and the
    whole ``snakemake`` command's wall time;
(b) a plain diffusers loop in one fresh Python process (``python -c``): ``import torch,
    diffusers``, ``DiffusionPipeline.from_pretrained(folder)``, the same steps, guidance, size,
    threads and batches, one ``torch.Generator`` an image seeded with the workflow's seeds,
    each image saved as a PNG; its whole process wall time (imports, load, images).
(c) the generate job's script (Snakemake's preamble + scripts/generate.py, kept with
    ``--skip-script-cleanup``) run again by hand without Snakemake: what Snakemake's handling
    of the job adds.
Both made the same images: their pixels are compared (the step's PNGs hold text chunks too).
Prints the time per image of each and their ratios, best (min) and median over the repeats,
and the CPU time (user + system, which the machine's load moves less than wall time) of the
step (the ``snakemake`` command's less that of one with nothing to do), of the script and of
the plain loop; then where the step's extra time goes: the generate job's log (timestamps a
line), the start of a Python that imports torch and diffusers with and without the step's
sdcnn modules and Snakemake's script preamble, and the PNGs written with and without their
text chunks.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.metadata
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import REPO, copy_workflow, machine

from tests.support.families import FAMILIES, FAMILY_FACTS, build_family

PROMPT_ID, PROMPT_TEXT, BASE_SEED = "p", "a red circle", 1

# the plain loop: argv = folder, out, steps, guidance, side, batch, threads, text, seeds...
PLAIN_LOOP = """
import sys, time
started = time.perf_counter()
import torch, diffusers
folder, out, steps, guidance, side, batch, threads, text = sys.argv[1:9]
seeds = [int(seed) for seed in sys.argv[9:]]
torch.set_num_threads(int(threads))
imported = time.perf_counter()
pipe = diffusers.DiffusionPipeline.from_pretrained(folder).to("cpu")
pipe.set_progress_bar_config(disable=True)
loaded = time.perf_counter()
batch = int(batch)
for start in range(0, len(seeds), batch):
    chunk = seeds[start:start + batch]
    images = pipe(
        prompt=[text] * len(chunk), num_inference_steps=int(steps),
        guidance_scale=float(guidance), height=int(side), width=int(side),
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in chunk],
        output_type="pil",
    ).images
    for index, image in zip(range(start, start + len(chunk)), images):
        image.save(f"{out}/{index:04d}.png")
done = time.perf_counter()
print(f"imports {imported - started:.2f} load {loaded - imported:.2f} images {done - loaded:.2f}")
"""

# the step's Python start-up, piece by piece (each the best of a few fresh processes)
IMPORTS = {
    "python, torch, diffusers": "import torch, diffusers",
    "+ the DiffusionPipeline class": "import torch; from diffusers import DiffusionPipeline",
    "+ snakemake's script preamble": (
        "import torch; from diffusers import DiffusionPipeline; import snakemake.script"
    ),
    "+ sdcnn's generate modules": (
        "import torch; from diffusers import DiffusionPipeline; import snakemake.script; "
        "import sdcnn.workflow.step, sdcnn.generate.shard_generator, "
        "sdcnn.generate.image_store, sdcnn.generate.model_source"
    ),
}


def step_config(folder: Path, images: int, args: argparse.Namespace) -> dict[str, Any]:
    """The default config with one prompt x ``images`` from ``folder``, store off."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["prompts"] = {PROMPT_ID: {"text": PROMPT_TEXT, "n_images": images, "label": "circle"}}
    config["shards"] = None
    config["generation"].update(
        steps=args.steps,
        guidance_scale=args.guidance,
        height=None,
        width=None,
        scheduler="default",
        base_seed=BASE_SEED,
        threads=args.threads,
        batch_size=args.batch_size,
        gpu=0,
    )
    config["model"] = {"source": str(folder), "allow_download": False}
    config["store"] = {"enabled": False}
    return config


def child_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_snakemake(workdir: Path) -> tuple[float, float]:
    """(wall, CPU seconds) of ``snakemake --cores 1`` asked for the prompt's images."""
    target = f"results/images/{PROMPT_ID}"
    command = [sys.executable, "-m", "snakemake", target, "--cores", "1", "--quiet"]
    command.append("--skip-script-cleanup")  # kept for run_script
    cpu, started = child_cpu(), time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, child_cpu() - cpu
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return wall, cpu


def run_step(workdir: Path) -> tuple[float, float, float]:
    """(the generate job's TSV seconds, the ``snakemake`` command's wall and CPU seconds);
    the TSV's own ``cpu_time`` is sampled, and misses the end of the job."""
    wall, cpu = run_snakemake(workdir)
    tsvs = list((workdir / "results" / "benchmarks").rglob("*.tsv"))
    rules = {tsv.relative_to(workdir / "results" / "benchmarks").parts[0] for tsv in tsvs}
    if rules != {"generate"}:
        sys.exit(f"expected the generate job alone, ran: {sorted(rules)}")
    with tsvs[0].open() as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return float(row["s"]), wall, cpu


def run_script(workdir: Path) -> tuple[float, float]:
    """(wall, CPU seconds) of the generate job's script (Snakemake's preamble and
    scripts/generate.py, as ``run_step`` left it) run again by hand, without Snakemake; its
    images and log are made again (the step's log is kept as ``<prompt>.step.log``)."""
    (script,) = (workdir / ".snakemake" / "scripts").glob("*.generate.py")
    log = workdir / "results" / "logs" / "generate" / f"{PROMPT_ID}.log"
    log.rename(log.with_suffix(".step.log"))
    shutil.rmtree(workdir / "results" / "images" / PROMPT_ID)
    cpu, started = child_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True)
    wall, cpu = time.perf_counter() - started, child_cpu() - cpu
    if result.returncode != 0:
        sys.exit(f"the generate script failed again:\n{log.read_text()[-3000:]}")
    return wall, cpu


def run_plain(folder: Path, out: Path, side: int, seeds: list[int], args: argparse.Namespace):  # noqa: ANN201
    """(the plain loop's process wall and CPU seconds, its own line: imports, load, images)."""
    out.mkdir(parents=True)
    command = [
        sys.executable,
        "-c",
        PLAIN_LOOP,
        str(folder),
        str(out),
        str(args.steps),
        str(args.guidance),
        str(side),
        str(args.batch_size),
        str(args.threads),
        PROMPT_TEXT,
        *map(str, seeds),
    ]
    cpu, started = child_cpu(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, child_cpu() - cpu
    if result.returncode != 0:
        sys.exit(f"the plain loop failed:\n{result.stderr[-3000:]}")
    return wall, cpu, result.stdout.strip().splitlines()[-1]


def same_pixels(step_images: Path, plain_images: Path, n_images: int) -> bool:
    """Whether both made the same images (pixels; the step's PNGs hold text chunks too)."""
    import numpy as np
    from PIL import Image

    from sdcnn.core.naming import image_id

    for index in range(n_images):
        ours = np.asarray(Image.open(step_images / f"{image_id(PROMPT_ID, index)}.png"))
        theirs = np.asarray(Image.open(plain_images / f"{index:04d}.png"))
        if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
            return False
    return True


def log_phases(log: Path) -> list[tuple[float, str]]:
    """The generate log's lines as (seconds since its first timestamped line, text)."""
    stamped = []
    for line in log.read_text().splitlines():
        match = re.match(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[.,]\d+)\s*(.*)", line)
        if match:
            when = datetime.datetime.fromisoformat(match.group(1).replace(",", "."))
            stamped.append((when.timestamp(), match.group(2)))
    if not stamped:
        return []
    first = stamped[0][0]
    return [(when - first, text) for when, text in stamped]


def phases(stamped: list[tuple[float, str]], job: float) -> tuple[float, float, float, float]:
    """A generate job of ``job`` seconds, from its log: (before the first line, first line ->
    pipeline loaded, loaded -> last image, the pipeline calls' own seconds)."""
    loaded = next(offset for offset, text in stamped if " loaded " in text)
    made = [offset for offset, text in stamped if "generated in" in text]
    calls = sum(
        float(m) for _, text in stamped for m in re.findall(r"generated in ([0-9.]+) s", text)
    )
    span = stamped[-1][0]
    return job - span, loaded, made[-1] - loaded, calls


def import_seconds(statement: str, samples: int) -> float:
    best = float("inf")
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=REPO)
        best = min(best, time.perf_counter() - started)
    return best


def png_seconds(images: Path, samples: int) -> tuple[float, float]:
    """Seconds to write a folder's PNGs (the step's) without and with their text chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    loaded = []
    for path in sorted(images.glob("*.png")):
        with Image.open(path) as image:
            image.load()
            loaded.append((image.copy(), dict(image.text)))
    plain, chunked = float("inf"), float("inf")
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(samples):
            started = time.perf_counter()
            for i, (image, _text) in enumerate(loaded):
                image.save(Path(scratch) / f"{i}.png", format="PNG")
            plain = min(plain, time.perf_counter() - started)
            started = time.perf_counter()
            for i, (image, text) in enumerate(loaded):
                info = PngInfo()
                for key, value in text.items():
                    info.add_itxt(key, value)
                image.save(Path(scratch) / f"{i}.png", format="PNG", pnginfo=info)
            chunked = min(chunked, time.perf_counter() - started)
    return plain, chunked


def versions() -> str:
    names = ("torch", "diffusers", "transformers", "snakemake", "pillow")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=1, help="generation.threads")
    parser.add_argument("--samples", type=int, default=3, help="of each start-up time")
    args = parser.parse_args()
    names = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")

    from sdcnn.core.seeds import image_seeds

    seeds = image_seeds(BASE_SEED, PROMPT_ID, args.images)
    started_at = datetime.datetime.now(datetime.UTC)
    load_at_start = " ".join(f"{value:.2f}" for value in os.getloadavg())
    rows, details = [], {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for name in names:
            folder = build_family(name, scratch / "models")
            side = FAMILY_FACTS[name]["native_size"]
            config = step_config(folder, args.images, args)
            step, step_cpu, command, plain, plain_cpu, plain_lines = [], [], [], [], [], []
            script, script_cpus = [], []
            for repeat in range(args.repeats):
                workdir = copy_workflow(scratch / name / f"step{repeat}", config)
                out = scratch / name / f"plain{repeat}"
                if repeat % 2:  # every other repeat the plain loop first
                    wall, cpu, line = run_plain(folder, out, side, seeds, args)
                    seconds, command_wall, command_cpu = run_step(workdir)
                    script_wall, script_cpu = run_script(workdir)
                else:
                    seconds, command_wall, command_cpu = run_step(workdir)
                    script_wall, script_cpu = run_script(workdir)
                    wall, cpu, line = run_plain(folder, out, side, seeds, args)
                script.append(script_wall)
                script_cpus.append(script_cpu)
                step.append(seconds)
                step_cpu.append(command_cpu)
                command.append(command_wall)
                plain.append(wall)
                plain_cpu.append(cpu)
                plain_lines.append(line)
                if repeat == 0 and not same_pixels(
                    workdir / "results" / "images" / PROMPT_ID, out, args.images
                ):
                    sys.exit(f"{name}: the step and the plain loop made different images")
                shutil.rmtree(out)
                print(
                    f"{name} repeat {repeat + 1}: step {seconds:.2f} s (snakemake "
                    f"{command_wall:.2f} s, CPU {command_cpu:.2f}), its script alone "
                    f"{script_wall:.2f} s (CPU {script_cpu:.2f}), plain {wall:.2f} s "
                    f"(CPU {cpu:.2f}) [{line}]",
                    file=sys.stderr,
                    flush=True,
                )
            idle_cpu = min(run_snakemake(workdir)[1] for _ in range(2))  # nothing to do
            best = scratch / name / f"step{min(range(args.repeats), key=step.__getitem__)}"
            details[name] = {
                "log": log_phases(best / "results" / "logs" / "generate" / f"{PROMPT_ID}.step.log"),
                "png": png_seconds(best / "results" / "images" / PROMPT_ID, 3),
                "plain": plain_lines[min(range(args.repeats), key=lambda i: plain[i])],
            }
            times = {"step": step, "snakemake": command, "script": script, "plain": plain}
            cpus = {"snakemake": step_cpu, "script": script_cpus, "plain": plain_cpu}
            rows.append(
                {"name": name, "side": side, "times": times, "cpus": cpus, "idle_cpu": idle_cpu}
            )
    imports = {label: import_seconds(code, args.samples) for label, code in IMPORTS.items()}
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())

    n = args.images
    print(machine())
    print(f"CPU: {cpu_model()}; {versions()}")
    print(
        f"started {started_at:%Y-%m-%d %H:%M} UTC; load average (1, 5, 15 min) at the start "
        f"{load_at_start}, at the end {load}"
    )
    print(
        f"1 prompt x {n} images a family, {args.steps} steps, guidance {args.guidance}, "
        f"batch size {args.batch_size}, {args.threads} torch thread(s), native size, the "
        f"model's own scheduler, image store off; {args.repeats} repeats interleaved; "
        "same pixels as the plain loop: yes"
    )
    print(
        "s/image, best (median) of the repeats: step = the generate job (its benchmark TSV); "
        "snakemake = the whole command; script = the job's script run again without "
        "Snakemake; plain = the plain loop's whole process"
    )
    print(
        "ratios of the best runs (median runs); CPU = user + system seconds: the snakemake "
        "command's less those of one with nothing to do, the script's, against the plain "
        "loop's"
    )
    columns = ("step", "snakemake", "script", "plain")
    header = f"{'family':12s} {'size':>4s} " + " ".join(f"{c:>13s}" for c in columns)
    print(f"{header} {'step/plain':>15s} {'script/plain':>12s} {'CPU step, script':>16s}")
    for row in rows:
        times, cpus = row["times"], row["cpus"]
        cells = " ".join(
            f"{min(times[c]) / n:6.3f} ({statistics.median(times[c]) / n:.3f})" for c in columns
        )

        def ratio(column: str, times: dict[str, list[float]] = times) -> float:
            return min(times[column]) / min(times["plain"])

        median = statistics.median(times["step"]) / statistics.median(times["plain"])
        cpu_step = (min(cpus["snakemake"]) - row["idle_cpu"]) / min(cpus["plain"])
        cpu_script = min(cpus["script"]) / min(cpus["plain"])
        print(
            f"{row['name']:12s} {row['side']:4d} {cells} {ratio('step'):6.2f}x ({median:.2f}x) "
            f"{ratio('script'):11.2f}x {cpu_step:9.2f}x {cpu_script:5.2f}x"
        )
    print(
        "where the time goes, best runs (s): the step = before its log's first line (Python, "
        "Snakemake's preamble, torch) + to the loaded pipeline (diffusers, load) + images "
        "(pipeline calls + PNGs); the plain loop = imports + load (diffusers' lazy "
        "imports included) + images; the step's PNGs written without -> with text "
        "chunks"
    )
    for row in rows:
        name, step, plain = row["name"], min(row["times"]["step"]), min(row["times"]["plain"])
        before, to_loaded, images, calls = phases(details[name]["log"], step)
        png_plain, png_text = details[name]["png"]
        print(
            f"  {name:12s} step {step:6.2f} = {before:5.2f} + {to_loaded:5.2f} + "
            f"{images:5.2f} (calls {calls:5.2f}); plain {plain:6.2f} "
            f"[{details[name]['plain']}]; PNGs {png_plain:.2f} -> {png_text:.2f}"
        )
    print(f"start-up of a fresh Python (best of {args.samples}; the step's imports, cumulative):")
    for label, value in imports.items():
        print(f"  {label:32s} {value:5.2f} s")


if __name__ == "__main__":
    main()
