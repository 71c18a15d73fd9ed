"""The package's layers import one way: core, then the stages in ``STAGES`` order, then the
Snakemake layer (``sdcnn.workflow``; rules/ and scripts/ above it).

Every import statement of every module counts, those inside functions too, except the ones
under ``if TYPE_CHECKING:``.  ``core`` imports nothing of the package outside itself; a stage
imports core and the stages before it; only ``sdcnn.workflow`` imports ``snakemake`` or
``sdcnn.workflow``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workspace import REPO

CORE = "core"
STAGES = ("preprocess", "generate", "classify", "evaluate", "reporting", "export", "config", "demo")
WORKFLOW = "workflow"
LAYERS = (CORE, *STAGES, WORKFLOW)  # each imports only those before it (and itself)
SNAKEMAKE = "snakemake"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """The absolute names of the modules that the file ``path`` (module ``module``) imports."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif node.level == 0:
            yield str(node.module)
        else:
            base = package[: len(package) - node.level + 1]
            yield ".".join([*base, *([node.module] if node.module else [])])


def layer_of(module: str, package: str) -> str | None:
    """The layer (the subpackage) of a module of ``package``, None outside it or for the
    package's own ``__init__``."""
    parts = module.split(".")
    return parts[1] if parts[0] == package and len(parts) > 1 else None


def violations(root: Path, package: str) -> list[str]:
    """Each import of the package under ``root/package`` that goes against its layers, as
    ``"importer -> imported"``."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        layer = layer_of(module, package)
        for imported in imported_modules(path, module):
            if not allowed(layer, imported, package):
                found.append(f"{module} -> {imported}")
    return found


def allowed(layer: str | None, imported: str, package: str) -> bool:
    """Whether a module of ``layer`` may import ``imported``."""
    if imported.split(".")[0] == SNAKEMAKE:
        return layer == WORKFLOW
    target = layer_of(imported, package)
    if imported.split(".")[0] != package or target is None:
        return True  # another distribution, or the package's version
    if layer not in LAYERS or target not in LAYERS:
        return False  # a module outside the declared layers
    return LAYERS.index(target) <= LAYERS.index(layer)


def test_the_package_imports_down_its_layers_only() -> None:
    assert violations(REPO, "sdcnn") == []


def test_every_subpackage_is_a_declared_layer() -> None:
    subpackages = {path.parent.name for path in (REPO / "sdcnn").glob("*/__init__.py")}
    assert subpackages == set(LAYERS)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tangled(tmp_path: Path) -> Path:
    """A small package ``pkg`` with one import of each kind the layers forbid, and some
    they allow."""
    for layer in LAYERS:
        write(tmp_path, f"pkg/{layer}/__init__.py", "")
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/core/a.py", "import os\nfrom pkg.generate import b\n")
    write(
        tmp_path,
        "pkg/generate/b.py",
        "from pkg.core import a\n\ndef run():\n    from pkg.workflow.step import x\n"
        "    import snakemake.io\n",
    )
    write(tmp_path, "pkg/preprocess/c.py", "from ..classify import d\nfrom . import e\n")
    write(
        tmp_path,
        "pkg/classify/d.py",
        "from typing import TYPE_CHECKING\nfrom pkg.generate.b import run\n"
        "if TYPE_CHECKING:\n    from pkg.reporting import f\n",
    )
    write(tmp_path, "pkg/workflow/step.py", "import snakemake\nfrom pkg.demo import g\n")
    return tmp_path


def test_the_check_reports_each_import_against_the_layers(tangled: Path) -> None:
    assert violations(tangled, "pkg") == [
        "pkg.core.a -> pkg.generate",  # core imports a stage
        "pkg.generate.b -> pkg.workflow.step",  # a stage imports the Snakemake layer,
        "pkg.generate.b -> snakemake.io",  # or Snakemake, inside a function
        "pkg.preprocess.c -> pkg.classify",  # a stage imports a later one (relative import)
    ]
