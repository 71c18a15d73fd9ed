"""Files under results/ that are not the current run's: list them, or remove them.

``results/manifest.json`` lists exactly the data outputs of the last finished run: read
it, not a glob over ``results/images/**``, to find a run's images and tensors.  A glob
can also find what earlier runs left behind:

- after ``shards`` changed, the old shard folders (``results/images/1-of-2/`` beside the
  new ``1-of-4/``, ...): the same images twice;
- after a prompt was removed, its images and predictions;
- a job killed mid-write leaves its hidden temporary (``.NAME.<random>.tmp``), which only
  a later run of the same job removes.

    python -m sdcnn.workflow.stale [results]            # list them
    python -m sdcnn.workflow.stale [results] --delete   # remove them

Only the data folders (``images``, ``tensors``, ``previews``, ``predictions``, and the
weights the manifest knows of) are looked at; logs, benchmarks, the training figures and
the report are left alone.  Nothing is removed while a Snakemake run holds the working
directory's lock (``.snakemake/locks/`` not empty), since its temporaries are in use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

DATA_FOLDERS = ("images", "tensors", "previews", "predictions")


def current_files(manifest: Path) -> set[str]:
    """The paths the manifest lists (relative to the working directory)."""
    document = json.loads(manifest.read_text(encoding="utf-8"))
    return {entry["path"] for entry in document["files"]}


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def stale_paths(results: Path) -> list[Path]:
    """Files and temporaries under ``results``' data folders that the manifest does not
    list, outermost first (a stale folder stands for everything in it)."""
    workdir = results.parent
    current = current_files(results / "manifest.json")
    kept_folders = {str(parent) for path in current for parent in Path(path).parents}
    stale: list[Path] = []
    for folder in DATA_FOLDERS:
        root = results / folder
        if not root.is_dir():
            continue
        stale += _stale_under(root, workdir, current, kept_folders)
    stale += sorted(path for path in results.glob(".*.tmp"))
    return stale


def _stale_under(root: Path, workdir: Path, current: set[str], kept: set[str]) -> list[Path]:
    found: list[Path] = []
    for path in sorted(root.iterdir()):
        relative = str(path.relative_to(workdir))
        if _is_temporary(path):
            found.append(path)
        elif path.is_dir():
            if relative in kept:
                found += _stale_under(path, workdir, current, kept)
            else:
                found.append(path)
        elif relative not in current and path.name != ".snakemake_timestamp":
            found.append(path)
    return found


def run_in_progress(workdir: Path) -> bool:
    locks = workdir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("results"))
    parser.add_argument("--delete", action="store_true", help="remove what is listed")
    args = parser.parse_args(argv)
    manifest = args.results / "manifest.json"
    if not manifest.is_file():
        parser.error(f"{manifest}: no manifest (finish a run first: it lists what is current)")
    stale = stale_paths(args.results)
    for path in stale:
        print(path)
    if not args.delete:
        print(f"{len(stale)} stale path(s); --delete removes them", file=sys.stderr)
        return 0
    if run_in_progress(args.results.parent):
        print("a Snakemake run holds this folder's lock: nothing removed", file=sys.stderr)
        return 1
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"{len(stale)} stale path(s) removed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
