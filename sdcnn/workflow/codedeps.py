"""Which files of this package a script imports, and what their code does.

Snakemake re-runs a ``script:`` job when the script file is newer than the job's
outputs (it compares modification times, not contents), but not when a module the
script imports changes.  Each rule passes ``code_digests`` of its script as a
``params:`` value: a mapping from each file (the script and every package module
it imports, directly or not) to a short digest of its syntax tree.  So

- a change to what a module does re-runs the steps that import it, and Snakemake's
  reason ("Params have changed since last execution: ... before: {...} now: {...}")
  shows, entry by entry, which file changed;
- a comment, a docstring, blank lines or other formatting change no digest, and
  re-run nothing; neither does a ``touch`` or an edit to a module the step does not
  import.

The digest is of ``ast.dump`` of the module with its docstrings removed: comments and
layout are not in the tree, and line numbers are left out.  ``ast.dump``'s format can
change with Python's minor version, so a new Python re-runs the steps once.

A param rather than the module files as inputs: with thousands of jobs, every input file
is resolved against every rule's outputs, which slows dry runs (benchmarks/RESULTS.md §5).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "sdcnn"
DIGEST_CHARS = 12  # 48 bits: a missed change has a 2**-48 chance; short enough to read

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): a block that never runs."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` less the bodies of ``if TYPE_CHECKING:`` (their ``else:`` runs)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if _is_type_checking(node):
            pending.extend([node.test, *node.orelse])
        else:
            pending.extend(ast.iter_child_nodes(node))


def imported_names(tree: ast.AST) -> Iterator[str]:
    """Dotted names a module imports when it runs (``from a import b`` yields ``a`` and
    ``a.b``); those imported only for type checkers do not count."""
    for node in _run_time_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring of the module and of every class and function removed."""
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:]
    return tree


def tree_fingerprint(tree: ast.Module) -> str:
    """A short digest of a parsed module without its docstrings (changes ``tree``)."""
    dump = ast.dump(without_docstrings(tree), annotate_fields=True, include_attributes=False)
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def code_fingerprint(source: str) -> str:
    """A short digest of what ``source`` does: its syntax tree without docstrings;
    comments, blank lines, line numbers and formatting do not count."""
    return tree_fingerprint(ast.parse(source))


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


def _analysis(path: Path) -> tuple[tuple[str, ...], str]:
    stat = path.stat()
    return _analysed(path, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _analysed(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, ...], str]:
    """(imported names, fingerprint) of one file version, parsed once: a dozen rules
    walk the same modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return tuple(imported_names(tree)), tree_fingerprint(tree)


def package_modules(script: Path, package_dir: Path) -> list[str]:
    """Every file of the package that ``script`` imports, directly or through other modules."""
    pending, found = [script], set()
    while pending:
        for name in _analysis(pending.pop())[0]:
            for path in module_files(name, package_dir):
                if path not in found:
                    found.add(path)
                    pending.append(path)
    return sorted(str(path) for path in found)


def _display_name(path: Path, root: Path) -> str:
    """``path`` relative to the workflow folder, with forward slashes."""
    return Path(os.path.relpath(path, root)).as_posix()


def code_digests(script: Path, package_dir: Path, script_name: str | None = None) -> dict[str, str]:
    """``{file: fingerprint}`` for ``script`` and every package module it imports, keyed
    by the path relative to the workflow folder (``package_dir``'s parent), sorted.

    ``script_name`` keys the script where its file is not in that folder: a remote
    module's script is a copy in Snakemake's source cache, its package an installed one,
    and the keys must be those of a clone (``scripts/generate.py``), wherever they lie.
    """
    root = package_dir.parent
    modules = map(Path, package_modules(script, package_dir))
    digests = {_display_name(path, root): _analysis(path)[1] for path in modules}
    digests[script_name or _display_name(script, root)] = _analysis(script)[1]
    return dict(sorted(digests.items()))
