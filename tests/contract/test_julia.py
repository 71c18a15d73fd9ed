"""The Flux backend's Julia code: static checks that need no Julia, and its own tests where
``julia`` is installed (skipped, with the reason shown, where it is not).

Without Julia nothing here runs the Julia code: tree-sitter-julia parses every ``.jl``
file, ``fatou lint`` (default rules plus undefined names and call arities, see
fatou.toml) and ``fatou format --check`` run on julia/.  The numbers are tied to the
PyTorch backend through the golden vectors instead (tests/contract/test_golden.py,
julia/test/runtests.jl).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tree_sitter_julia
from tree_sitter import Language, Node, Parser

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import run_snakemake
from tests.support.workspace import REPO, copy_workflow

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


# ---- what the Julia code must do, checked in its text (it cannot run here)

SDCNN_SOURCE = (JULIA_DIR / "src" / "SDCNN.jl").read_text(encoding="utf-8")


def julia_function(name: str, source: str = SDCNN_SOURCE) -> str:
    """The code (comments left out) of the top-level ``function name(...) ... end``."""
    match = re.search(rf"^function {re.escape(name)}\(.*?^end$", source, re.S | re.M)
    assert match, f"no function {name} in julia/src/SDCNN.jl"
    return re.sub(r"#.*", "", match.group(0))


def python_function(name: str, path: Path) -> str:
    pattern = rf"^def {re.escape(name)}\(.*?(?=^(?:def|class|@)|\Z)"
    match = re.search(pattern, path.read_text(), re.S | re.M)
    assert match, f"no function {name} in {path}"
    return match.group(0)


def test_julia_runs_true_fp32_on_cuda() -> None:
    select = julia_function("select_device")
    cuda_branch = select[select.index("CUDA.functional()") : select.index('return "cuda"')]
    assert "exact_fp32_on_cuda()" in cuda_branch
    assert "CUDA.math_mode!(CUDA.PEDANTIC_MATH)" in julia_function("exact_fp32_on_cuda")


def test_julia_writes_json_as_python_does() -> None:
    write = julia_function("write_json_atomic")
    assert "Base.Filesystem.rename(temporary, path)" in write  # rename(2), not mv
    assert "mv(" not in write and "mktemp(" not in write
    assert re.search(r"catch\s+close\(io\)\s+rm\(temporary; force = true\)", write)
    create = julia_function("create_temporary")
    assert "Base.Filesystem.open(temporary, TEMPORARY_FLAGS, 0o666)" in create
    assert "JL_O_EXCL" in SDCNN_SOURCE and "mktemp(" not in SDCNN_SOURCE.replace("`mktemp`", "")


def test_compatibility_messages_are_the_python_ones() -> None:
    """Both check_compatible raise the same messages, in the same order, each starting
    with the config key to change (docs/equivalence.md)."""
    julia = re.findall(r'InputError\(\s*"([^"$]*)', julia_function("check_compatible"))
    python_source = python_function("check_compatible", REPO / "sdcnn" / "classify" / "weights.py")
    python = [
        f"{key}: {problem}"
        for key, problem in re.findall(
            r'IncompatibleWeights\(\s*"([^"]*)",\s*f"([^"{]*)', python_source
        )
    ]
    keys = ["classifier.labels: ", "classifier.labels: ", "preprocess.grayscale: the tensors have "]
    assert julia == python == [*keys, "preprocess.size: "]


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
