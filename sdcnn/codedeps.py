"""Which files of this package a script imports, so that rules can declare them as inputs.

Snakemake re-runs a ``script:`` job when the script changes, but not when a
module the script imports changes.  Declaring those modules as inputs closes
that gap; small inputs are compared by checksum, so a mere ``touch`` re-runs
nothing.
"""

from __future__ import annotations

import ast
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


def package_modules(script: Path, package_dir: Path) -> list[str]:
    """Every file of the package that ``script`` imports, directly or through other modules."""
    pending, found = [script], set()
    while pending:
        for name in imported_names(pending.pop().read_text(encoding="utf-8")):
            for path in module_files(name, package_dir):
                if path not in found:
                    found.add(path)
                    pending.append(path)
    return sorted(str(path) for path in found)
