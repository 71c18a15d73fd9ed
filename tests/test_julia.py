"""The Flux backend's Julia code: static checks that need no Julia, and its own tests where
``julia`` is installed (skipped, with the reason shown, where it is not).

Without Julia nothing here runs the Julia code: tree-sitter-julia parses every ``.jl``
file, ``fatou lint`` (default rules plus undefined names and call arities, see
fatou.toml) and ``fatou format --check`` run on julia/.  The numbers are tied to the
PyTorch backend through the golden vectors instead (tests/test_golden.py,
julia/test/runtests.jl).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tree_sitter_julia
from tree_sitter import Language, Node, Parser

from conftest import REPO, SMALL_CONFIG, copy_workflow, run_snakemake

JULIA_DIR = REPO / "julia"
JULIA_FILES = sorted(JULIA_DIR.rglob("*.jl"))
JULIA = shutil.which("julia")
NO_JULIA = (
    "julia is not on PATH: the Flux backend's own tests (julia/test/runtests.jl) "
    "and the flux pipeline run were not run; only the static checks of julia/ ran"
)
needs_julia = pytest.mark.skipif(JULIA is None, reason=NO_JULIA)


def syntax_errors(source: bytes) -> list[str]:
    """Every ERROR or MISSING node tree-sitter-julia finds, as 'line:column type'."""
    tree = Parser(Language(tree_sitter_julia.language())).parse(source)
    found, pending = [], [tree.root_node]
    while pending:
        node: Node = pending.pop()
        if node.type == "ERROR" or node.is_missing:
            row, column = node.start_point
            found.append(f"{row + 1}:{column + 1} {'MISSING' if node.is_missing else 'ERROR'}")
        pending.extend(node.children)
    return found


def fatou(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("fatou", path=str(REPO / ".venv" / "bin")) or shutil.which("fatou")
    if executable is None:
        pytest.fail("fatou is not installed (it is pinned in requirements-dev.txt)")
    command = [executable, "--color", "never", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_julia_files_are_all_checked() -> None:
    names = {str(path.relative_to(REPO)) for path in JULIA_FILES}
    assert {"julia/src/SDCNN.jl", "julia/predict.jl", "julia/test/runtests.jl"} <= names


@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_julia_file_parses(path: Path) -> None:
    assert syntax_errors(path.read_bytes()) == []


@pytest.mark.parametrize(
    "source",
    [
        b"function f(x)\n    return x +\nend\n",  # an operand missing
        b"module M\nf(x) = (x, 1\nend\n",  # an unclosed parenthesis
        b"for i in 1:3\n    println(i)\n",  # an `end` missing
    ],
)
def test_the_parse_check_catches_broken_julia(source: bytes) -> None:
    assert syntax_errors(source) != []


def test_fatou_lint_is_clean() -> None:
    result = fatou("lint", "julia")
    assert result.returncode == 0, result.stdout + result.stderr


def test_fatou_format_check_is_clean() -> None:
    result = fatou("format", "--check", "julia")
    assert result.returncode == 0, result.stdout + result.stderr


def test_fatou_lint_catches_an_undefined_name(tmp_path: Path) -> None:
    shutil.copytree(JULIA_DIR, tmp_path / "julia")
    shutil.copy2(REPO / "fatou.toml", tmp_path / "fatou.toml")
    module = tmp_path / "julia" / "src" / "SDCNN.jl"
    source = module.read_text(encoding="utf-8")
    module.write_text(source.replace("map(load_tensor, paths)", "map(load_tensr, paths)"))
    executable = shutil.which("fatou", path=str(REPO / ".venv" / "bin")) or "fatou"
    result = subprocess.run(
        [executable, "--color", "never", "lint", "julia"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "load_tensr" in result.stdout + result.stderr


@needs_julia
def test_julia_package_tests_pass() -> None:
    """julia/test/runtests.jl: the Flux backend against the golden vectors, for real."""
    assert JULIA is not None
    code = "using Pkg; Pkg.instantiate(); Pkg.test()"
    command = [JULIA, f"--project={JULIA_DIR}", "--startup-file=no", "-e", code]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


@needs_julia
@pytest.mark.pipeline
def test_flux_pipeline_matches_torch(small_run: Path, tmp_path: Path) -> None:
    """The same workflow with backend flux: same probabilities as torch to 1e-5."""
    config = {**SMALL_CONFIG, "classifier": {**SMALL_CONFIG["classifier"], "backend": "flux"}}
    workdir = copy_workflow(tmp_path / "flux", config)
    run_snakemake(workdir, timeout=3600)
    for prompt_id in SMALL_CONFIG["prompts"]:
        torch_doc = json.loads((small_run / f"results/predictions/{prompt_id}.json").read_text())
        flux_doc = json.loads((workdir / f"results/predictions/{prompt_id}.json").read_text())
        assert (flux_doc["backend"], torch_doc["backend"]) == ("flux", "torch")
        assert list(flux_doc) == list(torch_doc)
        for flux_image, torch_image in zip(flux_doc["images"], torch_doc["images"], strict=True):
            assert flux_image["tensor_sha256"] == torch_image["tensor_sha256"]
            for label, p in torch_image["probabilities"].items():
                assert flux_image["probabilities"][label] == pytest.approx(p, abs=1e-5)
