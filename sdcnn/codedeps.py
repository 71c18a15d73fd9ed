"""Which files of this package a script imports, and a digest of their sources.

Snakemake re-runs a ``script:`` job when the script changes, but not when a
module the script imports changes.  Each rule passes ``code_digest`` of its
script as a ``params:`` value, so editing a module the step imports re-runs
that step (and what follows), while a ``touch``, or an edit to a module the
step does not import, re-runs nothing.  A param rather than the module files
as inputs: with thousands of jobs, every extra input file is resolved against
every rule's outputs, which made dry runs seconds slower.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "sdcnn"


def imported_names(source: str) -> Iterator[str]:
    """Dotted names a module imports (``from a import b`` yields ``a`` and ``a.b``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def module_files(name: str, package_dir: Path) -> list[Path]:
    """The files behind ``sdcnn.a.b``: each package ``__init__`` on the way, and the module."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return []
    files = []
    for depth in range(1, len(parts) + 1):
        base = package_dir.joinpath(*parts[1:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                files.append(candidate)
    return files


def _imports_of(path: Path) -> tuple[str, ...]:
    stat = path.stat()
    return _parsed_imports(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    """Parsed once per file version: a dozen rules walk the same modules."""
    return tuple(imported_names(path.read_text(encoding="utf-8")))


def package_modules(script: Path, package_dir: Path) -> list[str]:
    """Every file of the package that ``script`` imports, directly or through other modules."""
    pending, found = [script], set()
    while pending:
        for name in _imports_of(pending.pop()):
            for path in module_files(name, package_dir):
                if path not in found:
                    found.add(path)
                    pending.append(path)
    return sorted(str(path) for path in found)


def code_digest(script: Path, package_dir: Path) -> str:
    """sha256 over the package modules ``script`` imports: their paths in the package and bytes."""
    digest = hashlib.sha256()
    for path in map(Path, package_modules(script, package_dir)):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
