"""The package files each step is declared to depend on (sdcnn/workflow/codedeps.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdcnn.workflow.codedeps import code_digests, code_fingerprint, package_modules
from tests.support.workspace import REPO


def names(script: str) -> list[str]:
    paths = package_modules(REPO / "scripts" / script, REPO / "sdcnn")
    return sorted(Path(path).relative_to(REPO / "sdcnn").as_posix() for path in paths)


def test_step_code_dependencies_are_transitive_and_minimal() -> None:
    predict = names("predict.py")
    assert {
        "__init__.py",
        "classify/__init__.py",
        "classify/prediction.py",
        "classify/cnn.py",
        "classify/weights.py",
        "workflow/step.py",
    } <= set(predict)
    diffusion = {"generate/model_source.py", "generate/pipeline.py", "generate/shard_generator.py"}
    assert not diffusion & set(predict) and "preprocess/image_to_tensor.py" not in predict
    assert "classify/cnn.py" not in names("preprocess.py")
    assert "classify/cnn.py" in names("train_classifier.py")  # it trains the network it runs
    assert {"generate/pipeline.py", "generate/shard_generator.py"} <= set(names("generate.py"))


def package_and_script(tmp_path: Path, modules: dict[str, str], script: str) -> Path:
    """A package ``sdcnn`` of ``modules`` (name -> source) and a script beside it; the
    script's path."""
    package = tmp_path / "sdcnn"
    package.mkdir()
    for name, source in {"__init__": "", **modules}.items():
        (package / f"{name}.py").write_text(source)
    (tmp_path / "script.py").write_text(script)
    return tmp_path / "script.py"


def dependencies(script: Path) -> list[str]:
    return sorted(Path(p).name for p in package_modules(script, script.parent / "sdcnn"))


def test_code_dependencies_follow_new_imports(tmp_path: Path) -> None:
    modules = {
        "a": "import json\nfrom sdcnn import b\n",
        "b": "def f():\n    from sdcnn.c import g\n",
        "c": "",
        "unused": "",
    }
    script = package_and_script(tmp_path, modules, "from sdcnn.a import thing\n")
    assert dependencies(script) == ["__init__.py", "a.py", "b.py", "c.py"]


def test_imports_for_type_checkers_only_are_no_code_dependency(tmp_path: Path) -> None:
    """What ``if TYPE_CHECKING:`` imports never runs: no digest of it, no env needs it
    (tests/unit/project/test_envs.py reads the same list); its ``else:`` runs."""
    source = (
        "import typing\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sdcnn.hints import A\nelse:\n    import sdcnn.fallback\n"
        "if typing.TYPE_CHECKING:\n    import sdcnn.more_hints\n"
        "def f():\n    from sdcnn import after\n"
    )
    modules = dict.fromkeys(("hints", "more_hints", "fallback", "after"), "")
    script = package_and_script(tmp_path, modules, source)
    assert dependencies(script) == ["__init__.py", "after.py", "fallback.py"]


def test_code_digests_follow_imported_sources_only(tmp_path: Path) -> None:
    modules = {"used": "X = 1\n", "unused": "Y = 1\n"}
    script = package_and_script(tmp_path, modules, "from sdcnn.used import X\n")
    package = tmp_path / "sdcnn"
    first = code_digests(script, package)
    assert list(first) == ["script.py", "sdcnn/__init__.py", "sdcnn/used.py"]
    (package / "unused.py").write_text("Y = 2\n")
    (package / "used.py").touch()
    assert code_digests(script, package) == first
    (package / "used.py").write_text("X = 2\n")
    changed = code_digests(script, package)
    assert [name for name in first if first[name] != changed[name]] == ["sdcnn/used.py"]


MODULE = '''"""A module."""

import math

LABEL = "circle"


def area(radius: float) -> float:
    """The area of a circle."""
    return math.pi * radius**2


class Shape:
    """A shape."""

    sides = 0
'''

SAME_CODE = {
    "a comment": MODULE.replace("    return", "    # pi r squared\n    return"),
    "a trailing comment": MODULE + "# the end\n",
    "blank lines": MODULE.replace("\n\n\ndef", "\n\n\n\n\ndef"),
    "a module docstring": MODULE.replace('"""A module."""', '"""Geometry, documented."""'),
    "a function docstring": MODULE.replace("The area of a circle.", "Area, pi r^2."),
    "no class docstring": MODULE.replace('    """A shape."""\n\n', ""),
    "formatting": MODULE.replace("math.pi * radius**2", "(math.pi  *  (radius ** 2))"),
    "quotes": MODULE.replace('"circle"', "'circle'"),
}

OTHER_CODE = {
    "a constant": MODULE.replace("sides = 0", "sides = 1"),
    "an operator": MODULE.replace("radius**2", "radius**3"),
    "a new statement": MODULE + "LIMIT = 3\n",
    "a string that is not a docstring": MODULE.replace("sides = 0", "sides = 0\n    name = 'x'"),
    "an import": MODULE.replace("import math", "import math\nimport cmath"),
}


@pytest.mark.parametrize("change", SAME_CODE)
def test_fingerprint_ignores_comments_docstrings_and_layout(change: str) -> None:
    assert SAME_CODE[change] != MODULE
    assert code_fingerprint(SAME_CODE[change]) == code_fingerprint(MODULE)


@pytest.mark.parametrize("change", OTHER_CODE)
def test_fingerprint_follows_code_changes(change: str) -> None:
    assert code_fingerprint(OTHER_CODE[change]) != code_fingerprint(MODULE)


def test_fingerprint_of_the_same_file_is_stable(tmp_path: Path) -> None:
    # cached per (path, mtime, size): a rewrite with new content is seen
    package = tmp_path / "sdcnn"
    package.mkdir()
    script = tmp_path / "script.py"
    script.write_text("X = 1\n")
    first = code_digests(script, package)["script.py"]
    assert first == code_fingerprint("X = 1\n")
    script.write_text("X = 22\n")
    assert code_digests(script, package)["script.py"] == code_fingerprint("X = 22\n") != first
