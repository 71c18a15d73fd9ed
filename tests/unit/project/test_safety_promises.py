"""Safety: nothing is unpickled, prompt text never reaches a shell, YAML is read safely.

A static scan of the workflow's own code (sdcnn/, scripts/, benchmarks/, and the Python
of the Snakefile and rules/*.smk, translated by Snakemake's own parser) for the calls that
would break these promises.  It walks the syntax tree, not the text, so it sees through
import aliases (``import pickle as pk; pk.loads``, ``from pickle import loads as l``,
``n = numpy``), ``getattr(module, "name")`` and line breaks inside a call; a test checks that
it finds each forbidden form and lets each allowed one pass.  A real run with a prompt made
of shell syntax is in tests/workflow/test_bad_input_runs.py."""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.workspace import REPO

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
PICKLE_CALLS = {"load", "loads", "Unpickler"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
UNSAFE_YAML = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
UNSAFE_YAML_LOADERS = {
    "Loader",
    "CLoader",
    "UnsafeLoader",
    "CUnsafeLoader",
    "FullLoader",
    "CFullLoader",
}
SHELL_CALLS = {
    "os.system",
    "os.popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "asyncio.create_subprocess_shell",
    "pty.spawn",
}
CODE_FROM_STRINGS = {"eval", "exec", "builtins.eval", "builtins.exec"}
DYNAMIC_IMPORTS = {"__import__", "importlib.import_module"}

WHY = {
    "pickle": "pickle can run code when loaded",
    "numpy": "np.load must say allow_pickle=False",
    "allow_pickle": "numpy must not load pickles",
    "torch": "torch.load must use weights_only=True",
    "yaml": "YAML must be read with a SafeLoader",
    "shell": "no shell from Python",
    "eval": "no code from strings",
}


@dataclass(frozen=True)
class Violation:
    line: int
    code: str
    promise: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.code!r} ({WHY[self.promise]})"


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _has_double_star(call: ast.Call) -> bool:
    return any(kw.arg is None for kw in call.keywords)


class SafetyScan(ast.NodeVisitor):
    """One module's violations; names are resolved through its imports and assignments."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> qualified name
        self.safe_classes: set[str] = set()  # classes defined here on a safe YAML loader
        self.found: list[Violation] = []

    # -- names

    def qualified(self, node: ast.expr) -> str | None:
        """``pk.loads`` -> "pickle.loads" after ``import pickle as pk``; None if unknown."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and self.aliases.get(node.func.id, node.func.id) == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            base = self.qualified(node.args[0])
            return None if base is None else f"{base}.{node.args[1].value}"
        return None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:  # `import os.path` binds `os`
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module and alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                self.check_name(f"{node.module}.{alias.name}", node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        target = self.qualified(node.value)
        if target is None or target.split(".")[0] not in {*self.aliases.values(), "getattr"}:
            return
        for name in node.targets:
            if isinstance(name, ast.Name):
                self.aliases[name.id] = target

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if any(self.is_safe_loader(base) for base in node.bases):
            self.safe_classes.add(node.name)
        self.generic_visit(node)

    def is_safe_loader(self, node: ast.expr | None) -> bool:
        if isinstance(node, ast.Name) and node.id in self.safe_classes:
            return True
        name = self.qualified(node) if node is not None else None
        return name is not None and name.split(".")[-1] in SAFE_YAML_LOADERS

    # -- uses

    def report(self, node: ast.AST, promise: str) -> None:
        line = getattr(node, "lineno", 0)
        self.found.append(Violation(line, ast.unparse(node)[:120], promise))  # type: ignore[arg-type]

    def check_name(self, name: str, node: ast.AST) -> None:
        """A reference that is unsafe wherever it appears (called or passed on)."""
        module, _, attr = name.rpartition(".")
        if module in PICKLE_MODULES and attr in PICKLE_CALLS:
            self.report(node, "pickle")
        elif module == "yaml" and (attr in UNSAFE_YAML or attr in UNSAFE_YAML_LOADERS):
            self.report(node, "yaml")
        elif name in SHELL_CALLS or re.fullmatch(r"os\.(exec|spawn|popen)\w*", name):
            self.report(node, "shell")
        elif name == "pandas.read_pickle":
            self.report(node, "pickle")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.qualified(node)
        if name is not None:
            self.check_name(name, node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.aliases and isinstance(node.ctx, ast.Load):
            self.check_name(self.aliases[node.id], node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func)
        if name is not None and name.startswith("getattr."):
            name = None
        resolved = self.qualified(node) if name == "getattr" else None
        if resolved is not None:  # getattr(pickle, "loads") used as a value
            self.check_name(resolved, node)
        shell = _keyword(node, "shell")
        if shell is not None and not _is_constant(shell, False):
            self.report(node, "shell")
        allow_pickle = _keyword(node, "allow_pickle")
        if allow_pickle is not None and not _is_constant(allow_pickle, False):
            self.report(node, "allow_pickle")
        if name in ("numpy.load", "np.load") and not _is_constant(allow_pickle, False):
            if allow_pickle is None:
                self.report(node, "numpy")
        elif name == "torch.load" and not _is_constant(_keyword(node, "weights_only"), True):
            self.report(node, "torch")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if not self.is_safe_loader(loader) or _has_double_star(node):
                self.report(node, "yaml")
        elif name in CODE_FROM_STRINGS:
            self.report(node, "eval")
        elif name in DYNAMIC_IMPORTS and node.args:
            module = node.args[0]
            if not isinstance(module, ast.Constant) or module.value in PICKLE_MODULES:
                self.report(node, "pickle")
        self.generic_visit(node)


def violations(code: str) -> list[Violation]:
    """The promises ``code`` (Python) breaks."""
    scan = SafetyScan()
    scan.visit(ast.parse(code))
    return sorted(scan.found, key=lambda violation: violation.line)


def snakemake_python(path: Path) -> tuple[str, dict[int, int]]:
    """A Snakefile or .smk file as the Python Snakemake makes of it, and its line map
    (compiled line -> source line)."""
    from snakemake.parser import parse
    from snakemake.sourcecache import LocalSourceFile

    class Sources:
        def open(self, source: LocalSourceFile):  # noqa: ANN202 (a text file)
            return open(source.get_path_or_uri(secret_free=True), encoding="utf-8")

    linemap: dict[int, int] = {}
    compiled, _ = parse(
        LocalSourceFile(str(path)), types.SimpleNamespace(sourcecache=Sources()), linemap
    )
    return compiled, linemap


def scanned_files() -> list[Path]:
    files = [REPO / "Snakefile"]
    for folder, pattern in (
        ("sdcnn", "*.py"),
        ("scripts", "*.py"),
        ("benchmarks", "*.py"),
        ("rules", "*.smk"),
    ):
        files += sorted((REPO / folder).rglob(pattern))
    return files


def file_violations(path: Path) -> Iterator[str]:
    if path.suffix == ".py":
        for violation in violations(path.read_text(encoding="utf-8")):
            yield str(violation)
        return
    compiled, linemap = snakemake_python(path)
    for violation in violations(compiled):
        line = linemap.get(violation.line, violation.line)
        yield str(Violation(line, violation.code, violation.promise))


def test_the_code_keeps_the_safety_promises() -> None:
    files = scanned_files()
    kinds = {path.relative_to(REPO).parts[0] for path in files}
    assert {"Snakefile", "sdcnn", "scripts", "benchmarks", "rules"} <= kinds, kinds
    problems = [
        f"{path.relative_to(REPO)} {problem}" for path in files for problem in file_violations(path)
    ]
    assert problems == [], "the code breaks a safety promise:\n" + "\n".join(problems)


def test_snakemake_files_are_scanned_as_python(tmp_path: Path) -> None:
    """The rules' own Python (helpers, run: blocks) is seen: a forbidden call in a .smk
    is found, at its line in the .smk file."""
    compiled, linemap = snakemake_python(REPO / "rules" / "common.smk")
    assert "def requested_gpus" in compiled
    smk = REPO / "rules" / "common.smk"
    scratch = tmp_path / "bad.smk"
    scratch.write_text(
        smk.read_text(encoding="utf-8")
        + "\n\nrule bad:\n    output:\n        'x'\n    run:\n"
        + "        import pickle as pk\n        pk.loads(open(input[0], 'rb').read())\n",
        encoding="utf-8",
    )
    found = list(file_violations(scratch))
    line = len(smk.read_text(encoding="utf-8").splitlines()) + 8
    assert found and all(f"line {line}:" in problem for problem in found), (
        f"a pickle.loads in a run: block at line {line} of a .smk was reported as {found}"
    )


@pytest.mark.parametrize(
    "code",
    [
        "import pickle\nweights = pickle.load(handle)",
        "import pickle\ndata = pickle.loads(blob)",
        "import pickle as pk\npk.loads(blob)",
        "from pickle import loads as l\nl(blob)",
        "from pickle import Unpickler",
        "import _pickle\n_pickle.loads(b)",
        "import dill; dill.load(f)",
        "import joblib\nmodel = joblib.load(path)",
        "import pickle\nreader = getattr(pickle, 'loads')\nreader(blob)",
        "import pickle\nmodule = pickle\nmodule.loads(blob)",
        "import importlib\nimportlib.import_module('pickle').loads(b)",
        "__import__('pickle')",
        "import pandas as pd\npd.read_pickle(path)",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
        "import numpy as n\nn.load(path, allow_pickle=True)",
        "import numpy\nnumpy.load(path)",
        "import numpy as np\ntensor = np.load(path)",
        "import numpy as np\ntensor = np.load(path, allow_pickle=flag)",
        "from numpy import load\nload(path)",
        "import numpy as np\nnp.lib.format.read_array(f, allow_pickle=True)",
        "import torch\nstate = torch.load(path)",
        "import torch\nstate = torch.load(path, weights_only=False)",
        "import torch as t\nt.load(path)",
        "import yaml\nconfig = yaml.load(text)",
        "import yaml\nconfig = yaml.load(text, Loader=yaml.Loader)",
        "import yaml\nconfig = yaml.load(text, yaml.FullLoader)",
        "import yaml\nconfig = yaml.load(text, Loader=MyLoader)",
        "import yaml\nconfig = yaml.load_all(text, Loader=yaml.UnsafeLoader)",
        "import yaml\nconfig = yaml.unsafe_load(text)",
        "import yaml\nconfig = yaml.full_load(text)",
        "from yaml import load\nload(text)",
        "from yaml import full_load as read\nread(text)",
        "import yaml as y\ny.load(text)",
        "import subprocess\nsubprocess.run(f'echo {prompt}', shell=True)",
        "import subprocess as sp\nsp.check_output(\n    command,\n    shell=True,\n)",
        "from subprocess import Popen\nPopen(command, shell=use_shell)",
        "import subprocess\nsubprocess.getoutput(command)",
        "import os\nos.system('convert ' + path)",
        "import os\nos.popen(command)",
        "from os import system as run\nrun(command)",
        "import os\nos.execvp('sh', ['sh', '-c', command])",
        "value = eval(config['x'])",
        "exec(source)",
        "import builtins\nbuiltins.eval(text)",
    ],
)
def test_the_scan_finds_each_broken_promise(code: str) -> None:
    assert violations(code), f"the scan lets this through:\n{code}"


@pytest.mark.parametrize(
    "code",
    [
        "import numpy as np\nnp.load(path, allow_pickle=False)",
        "import numpy as np\nnp.save(path, tensor, allow_pickle=False)",
        "import torch\ntorch.load(path, weights_only=True)",
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import yaml\nLOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)\n"
        "yaml.load(text, Loader=LOADER)",
        "import yaml\nclass StrictSafeLoader(yaml.SafeLoader):\n    pass\n"
        "yaml.load(text, Loader=StrictSafeLoader)",
        "import yaml\nyaml.safe_dump(config)",
        "import subprocess\nsubprocess.run(['julia', script], check=True)",
        "import subprocess\nsubprocess.run(command, shell=False)",
        "model.eval()",
        "net = model.eval()\nnet(batch)",
        "import json\njson.loads(text)",
        "import re\npattern = re.compile(text)",
        "import os\nos.path.join(a, b)",
        "def load(path):\n    return path\nload(x)",
    ],
)
def test_the_scan_lets_safe_code_pass(code: str) -> None:
    assert violations(code) == [], f"the scan refuses safe code:\n{code}"
