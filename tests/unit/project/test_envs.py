"""The conda environments of envs/ agree with the pip install and with what each step imports.

Conda channels cannot be reached here, so no environment is solved: these tests read the
env files and check that (1) every rule names an env that exists, (2) every env uses
conda-forge + nodefaults and pins every package, (3) each pin equals the version
requirements.txt pins for pip, and (4) each env holds every third-party module its step's
script and the sdcnn modules it imports need.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from sdcnn.classify.prediction import BACKENDS
from sdcnn.workflow.codedeps import package_modules
from sdcnn.workflow.envs import conda_env
from tests.support.workspace import REPO

ENVS = REPO / "envs"
CHANNELS = ["conda-forge", "nodefaults"]
# conda-forge name -> PyPI name, where they differ
PIP_NAMES = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",  # metapackages that pin pytorch's CPU or CUDA build
    "pytorch-gpu": "torch",
    "py-opencv": "opencv-python-headless",
    "matplotlib-base": "matplotlib",
}
# an imported top-level module -> the conda-forge package that provides it
MODULE_PACKAGES = {
    "torch": "pytorch",
    "cv2": "py-opencv",
    "PIL": "pillow",
    "numpy": "numpy",
    "safetensors": "safetensors",
    "diffusers": "diffusers",
    "transformers": "transformers",
    "yaml": "pyyaml",
    "huggingface_hub": "huggingface_hub",
    "matplotlib": "matplotlib-base",
    "jsonschema": "jsonschema",
}
# Packages that are not Python packages of the pip install: pinned, not compared.
NON_PIP_PACKAGES = {"julia"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\s*(?:==|=)\s*(?P<version>[0-9][A-Za-z0-9.+_-]*)$")
RULE = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)


def directive(body: str, name: str) -> str | None:
    """The value of a rule's directive: a quoted path, a name or a helper call like `env()`."""
    match = re.search(rf'^    {name}:\n\s+("[^"]+"|\w+(?:\(\))?)\n', body, re.MULTILINE)
    return match.group(1) if match else None


def chosen_env_files(name: str) -> list[str]:
    """The env files a conda: value of rules/common.smk can be: ``NAME = conda_env("step",
    …)`` there, and every file sdcnn.workflow.envs.conda_env gives that step."""
    common = (REPO / "rules" / "common.smk").read_text()
    step = re.search(rf'^{name} = conda_env\(\s*"(\w+)"', common, re.MULTILINE)
    assert step, f"{name} is not a conda_env(...) of rules/common.smk"
    return sorted({conda_env(step[1], gpus, backend) for gpus in (0, 1) for backend in BACKENDS})


def workflow_rules() -> dict[str, dict]:
    """rule name -> its conda env files (all a helper may choose), script, from rules/*.smk."""
    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            conda, script = directive(body, "conda"), directive(body, "script")
            if conda is None:
                envs = []
            elif conda.startswith('"'):
                envs = [conda.strip('"')]
            else:
                envs = chosen_env_files(conda)
            rules[name] = {
                "file": smk.name,
                "envs": [(smk.parent / env).resolve() for env in envs],
                "chosen_by_config": conda is not None and not conda.startswith('"'),
                "script": (smk.parent / script.strip('"')).resolve() if script else None,
            }
    return rules


def read_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name} is not a mapping"
    return env


def pins(path: Path) -> dict[str, str]:
    """package -> pinned version of an env file; fails on any package not pinned."""
    pinned = {}
    for dependency in read_env(path)["dependencies"]:
        assert isinstance(dependency, str), f"{path.name}: a pip section is not allowed here"
        match = PIN.match(dependency.strip())
        assert match, f"{path.name}: {dependency!r} is not pinned as 'name =version'"
        pinned[match["name"]] = match["version"]
    return pinned


def pip_pins() -> dict[str, str]:
    pinned = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = version.strip()
    return pinned


def release(version: str) -> tuple[int, ...]:
    """major.minor.patch: opencv's pip wheels add a fourth number of their own (5.0.0.93)."""
    return Version(version).release[:3]


def imported_packages(script: Path) -> set[str]:
    """Third-party top-level modules the script and the sdcnn modules it uses import."""
    files = [script, *map(Path, package_modules(script, REPO / "sdcnn"))]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "sdcnn"}


ENV_FILES = sorted(ENVS.glob("*.yaml"))


def test_every_rule_names_an_env_that_exists() -> None:
    rules = workflow_rules()
    assert {"generate", "preprocess", "predict"} <= set(rules)
    for name, rule in rules.items():
        assert rule["envs"], f"rule {name} ({rule['file']}) has no conda: directive"
        for env in rule["envs"]:
            assert env.is_file(), f"rule {name}: {env} does not exist"
    used = {env for rule in rules.values() for env in rule["envs"]}
    unused = [path.name for path in ENV_FILES if path.resolve() not in used]
    assert unused == [], f"env files no rule uses: {unused}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_env_uses_conda_forge_and_pins_everything(path: Path) -> None:
    env = read_env(path)
    assert env.get("channels") == CHANNELS, f"{path.name}: channels must be {CHANNELS}"
    assert pins(path), f"{path.name} lists no packages"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_env_pins_match_requirements_txt(path: Path) -> None:
    pip = pip_pins()
    requires_python = SpecifierSet(
        re.search(r'requires-python = "([^"]+)"', (REPO / "pyproject.toml").read_text())[1]
    )
    for name, version in pins(path).items():
        if name == "python":
            assert Version(version) in requires_python, f"{path.name}: python {version}"
            continue
        if name in NON_PIP_PACKAGES:
            continue
        pip_name = canonicalize_name(PIP_NAMES.get(name, name))
        assert pip_name in pip, f"{path.name}: {name} is not in requirements.txt"
        assert release(version) == release(pip[pip_name]), (
            f"{path.name}: {name} ={version}, but requirements.txt has {pip_name}=={pip[pip_name]}"
        )


PREDICT_RULES = ("predict", "predict_real")  # their env follows classifier.backend


def test_each_env_holds_what_its_step_imports() -> None:
    """Every module a step's script may import, anywhere in the files it uses, is in its env.

    A rule whose env follows the config checks every env it may get (generate: CPU or
    CUDA build), except predict and predict_real, whose backends (classifier.backend)
    import different modules, which this file-level reading cannot tell apart.
    """
    checked = []
    for name, rule in workflow_rules().items():
        if name in PREDICT_RULES or rule["script"] is None or rule["script"].suffix != ".py":
            continue
        for env in rule["envs"]:
            provided = set(pins(env))
            for module in sorted(imported_packages(rule["script"])):
                assert module in MODULE_PACKAGES, f"rule {name} imports {module}: map it above"
                package = MODULE_PACKAGES[module]
                assert package in provided, (
                    f"rule {name} imports {module}, but {env.name} has no {package}"
                )
        checked.append(name)
    assert {"generate", "preprocess", "preprocess_real", "diversity", "init_weights"} <= set(
        checked
    )


CUDA_ENVS = sorted(ENVS.glob("*-cuda.yaml"))


@pytest.mark.parametrize("cuda", CUDA_ENVS, ids=lambda path: path.name)
def test_a_cuda_env_is_its_cpu_env_with_the_cuda_build_of_the_same_torch(cuda: Path) -> None:
    cpu = cuda.with_name(cuda.name.replace("-cuda", ""))
    cuda_pins, cpu_pins = pins(cuda), pins(cpu)
    assert cuda_pins.pop("pytorch-gpu") == cpu_pins.pop("pytorch-cpu") == cpu_pins["pytorch"]
    assert cuda_pins == cpu_pins
    rules = workflow_rules().values()
    assert any(cuda.resolve() in rule["envs"] and cpu.resolve() in rule["envs"] for rule in rules)


def test_there_are_cuda_envs_for_both_torch_steps() -> None:
    assert [path.name for path in CUDA_ENVS] == ["diffusion-cuda.yaml", "predict-torch-cuda.yaml"]
