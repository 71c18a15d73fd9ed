"""Safety: nothing is unpickled, prompt text never reaches a shell, YAML is read safely.

A static scan of the workflow's own code for the calls that would break these
promises, with a test that the scan finds each of them; and a real run with a
prompt made of shell syntax.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO, copy_workflow, run_snakemake

# What may never appear in the package, the scripts or the rules (why, then the pattern).
FORBIDDEN = {
    "pickle can run code when loaded": r"\b(c?[Pp]ickle|dill|cloudpickle|joblib)\.(load|loads"
    r"|Unpickler)\b",
    "numpy must not load pickles": r"allow_pickle\s*=\s*True",
    "np.load must say allow_pickle=False": r"\bnp\.load\((?![^)]*allow_pickle\s*=\s*False)",
    "torch.load must use weights_only=True": r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)",
    "YAML must be read with a SafeLoader": r"\byaml\.(load|load_all)\((?![^)]*SafeLoader)"
    r"|\byaml\.(unsafe_load|full_load)\b|\byaml\.(Unsafe|Full)?Loader\b",
    "no shell from Python": r"\bshell\s*=\s*True|\bos\.(system|popen|exec\w*)\(|\bsubprocess\."
    r"(getoutput|getstatusoutput)\(",
    "no code from strings": r"(?<![\w.])(eval|exec)\(",
}


def scanned_files() -> list[Path]:
    files = [REPO / "Snakefile"]
    for folder, pattern in (("sdcnn", "*.py"), ("scripts", "*.py"), ("rules", "*.smk")):
        files += sorted((REPO / folder).rglob(pattern))
    return files


def violations(text: str) -> list[str]:
    """The promises ``text`` breaks, with the offending code."""
    found = []
    for promise, pattern in FORBIDDEN.items():
        for match in re.finditer(pattern, text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"line {line}: {match.group(0)!r} ({promise})")
    return found


def test_the_code_keeps_the_safety_promises() -> None:
    files = scanned_files()
    assert len(files) > 10 and any(path.suffix == ".smk" for path in files)
    problems = [
        f"{path.relative_to(REPO)} {problem}"
        for path in files
        for problem in violations(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


@pytest.mark.parametrize(
    "code",
    [
        "import pickle\nweights = pickle.load(handle)",
        "data = pickle.loads(blob)",
        "import dill; dill.load(f)",
        "np.load(path, allow_pickle=True)",
        "tensor = np.load(path)",
        "state = torch.load(path)",
        "state = torch.load(path, weights_only=False)",
        "config = yaml.load(text)",
        "config = yaml.load(text, Loader=yaml.Loader)",
        "config = yaml.unsafe_load(text)",
        "config = yaml.full_load(text)",
        "subprocess.run(f'echo {prompt}', shell=True)",
        "os.system('convert ' + path)",
        "os.popen(command)",
        "value = eval(config['x'])",
    ],
)
def test_the_scan_finds_each_broken_promise(code: str) -> None:
    assert violations(code)


@pytest.mark.parametrize(
    "code",
    [
        "np.load(path, allow_pickle=False)",
        "torch.load(path, weights_only=True)",
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=StrictSafeLoader)",
        "subprocess.run(['julia', script], check=True)",
        "model.eval()",
    ],
)
def test_the_scan_lets_safe_code_pass(code: str) -> None:
    assert violations(code) == []


# ---- a prompt made of shell syntax is only ever text

# Each context a naive shell command could put the text in runs at least one `touch`:
# unquoted or "..." runs $(...) and `...`; '...' is left by the '; ... ; ' part.
SHELL_PROMPT = (
    "a city at night $(touch pwned1) `touch pwned2` '; touch pwned3; ' \"; touch pwned4; \" "
    "&& touch pwned5 ; touch pwned6 > pwned7 | cat ${HOME} %s {prompt} {{x}}\nsecond line"
)


@pytest.mark.pipeline
def test_shell_syntax_in_a_prompt_is_only_text(tmp_path: Path) -> None:
    config = {
        "prompts": {
            "shell": {"text": SHELL_PROMPT, "negative_prompt": "$(touch pwned8)", "n_images": 2}
        },
        "generation": {"steps": 2, "height": 64, "width": 64},
        "preprocess": {"size": 32},
    }
    workdir = copy_workflow(tmp_path / "run", config)
    run_snakemake(workdir, "results/images/shell")
    images = sorted((workdir / "results" / "images" / "shell").glob("*.png"))
    assert [path.name for path in images] == ["shell_000.png", "shell_001.png"]
    for path in images:
        with Image.open(path) as image:
            assert image.text["prompt"] == SHELL_PROMPT
            assert image.text["negative_prompt"] == "$(touch pwned8)"
    assert sorted(tmp_path.rglob("pwned*")) == []
