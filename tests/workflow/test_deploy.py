"""The workflow used as a Snakemake module, and deployed with snakedeploy, end to end.

Both run in a folder of their own, with their own config/config.yaml, far from the
workflow's files: paths must follow the workflow's own files (workflow.current_basedir,
workflow.source_path), not the main Snakefile's folder or the working directory.  Their
outputs must be the bytes of a plain run of the same config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.configs import SMALL_CONFIG
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import REPO, copy_workflow, write_config

pytestmark = pytest.mark.pipeline

MODULE_SNAKEFILE = """\
configfile: "config/config.yaml"


module sdcnn:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from sdcnn
"""


def deployment(folder: Path, snakefile: str) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "Snakefile").write_text(MODULE_SNAKEFILE.format(snakefile=snakefile))
    write_config(folder, SMALL_CONFIG)
    return folder


def assert_same_outputs(workdir: Path, small_run: Path) -> None:
    deployed, plain = result_files(workdir), result_files(small_run)
    assert sorted(deployed) == sorted(plain), sorted(set(deployed) ^ set(plain))
    different = [name for name in plain if deployed[name] != plain[name]]
    assert different == [], f"outputs that differ from a plain run's: {different}"


def test_as_a_module_from_another_folder(tmp_path: Path, small_run: Path) -> None:
    source = copy_workflow(tmp_path / "source" / "sdcnn")
    workdir = deployment(tmp_path / "analysis", str(source / "Snakefile"))
    run_snakemake(workdir, "--workflow-profile", "none")
    assert_same_outputs(workdir, small_run)
    assert not (source / "results").exists()  # the module's own folder gets nothing


def test_deployed_with_snakedeploy(tmp_path: Path, small_run: Path) -> None:
    snakedeploy = shutil.which("snakedeploy", path=str(Path(sys.executable).parent))
    if snakedeploy is None:
        pytest.skip("snakedeploy is not installed (it is in requirements-dev.txt)")
    source = copy_workflow(tmp_path / "clone" / "sdcnn")  # a local clone
    destination = tmp_path / "deployed"
    result = subprocess.run(
        [snakedeploy, "deploy-workflow", str(source), str(destination), "--branch", "main"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    snakefile = destination / "workflow" / "Snakefile"
    text = snakefile.read_text()
    # snakedeploy 0.17's Local provider writes the module's path relative to the repository
    # ("Snakefile"), which Snakemake reads relative to workflow/Snakefile itself: point it
    # at the clone (a github() source gets a correct declaration; it needs the network)
    assert '"Snakefile"' in text, text
    snakefile.write_text(text.replace('"Snakefile"', f'"{source / "Snakefile"}"', 1))
    assert (destination / "config" / "schema.yaml").is_file()  # config/ was copied
    assert (destination / "profiles" / "slurm" / "config.yaml").is_file()  # and profiles/
    write_config(destination, SMALL_CONFIG)
    run_snakemake(destination, "--workflow-profile", "none")
    assert_same_outputs(destination, small_run)


# ---- remote modules: the workflow's files come from git, through Snakemake's source cache,
# and its package is the installed one (this checkout's, `pip install -e .`: the same code)

REMOTE_TAG = "v1"
GITHUB_REPO = "sdcnn-org/sdcnn"  # never reached: the seeded cache holds the tag


def git(*args: str, cwd: Path) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def workflow_repository(folder: Path, *, version: str | None = None) -> Path:
    """A git repository of this checkout's workflow (pyproject.toml too: a remote module
    reads its version), committed on `main` and tagged v1; optionally another version."""
    copy_workflow(folder)
    shutil.copy2(REPO / "pyproject.toml", folder / "pyproject.toml")
    if version is not None:
        project = folder / "pyproject.toml"
        text = project.read_text()
        project.write_text(text.replace('version = "', f'version = "{version}" #', 1))
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "the workflow", cwd=folder)
    git("tag", REMOTE_TAG, cwd=folder)
    return folder


def seeded_git_cache(cache_home: Path, repository: Path) -> None:
    """Snakemake's clone of github.com/GITHUB_REPO, where it looks for it (its source
    cache under XDG_CACHE_HOME): with the tag in it, Snakemake never fetches."""
    clones = cache_home / "snakemake" / "snakemake" / "source-cache" / "snakemake-git-cache"
    clone = clones / "github.com" / GITHUB_REPO
    clone.parent.mkdir(parents=True)
    git("clone", "-q", "--bare", str(repository), str(clone), cwd=cache_home)


def remote_env(cache_home: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(cache_home)}


def test_as_a_module_from_a_git_file_source(tmp_path: Path, small_run: Path) -> None:
    repository = workflow_repository(tmp_path / "repository")
    source = f"git+file://{repository}/Snakefile@main"
    workdir = deployment(tmp_path / "analysis", source)
    run_snakemake(workdir, env=remote_env(tmp_path / "cache"))
    assert_same_outputs(workdir, small_run)
    assert not (repository / "results").exists()


def test_as_a_github_module_from_a_seeded_cache(tmp_path: Path, small_run: Path) -> None:
    """What snakedeploy writes for a GitHub repository, offline."""
    cache_home = tmp_path / "cache"
    seeded_git_cache(cache_home, workflow_repository(tmp_path / "repository"))
    workdir = tmp_path / "analysis"
    deployment(workdir, "@")  # placeholder, replaced by the github() declaration
    snakefile = workdir / "Snakefile"
    declaration = f'github("{GITHUB_REPO}", path="Snakefile", tag="{REMOTE_TAG}")'
    snakefile.write_text(snakefile.read_text().replace('"@"', declaration))
    run_snakemake(workdir, env=remote_env(cache_home))
    assert_same_outputs(workdir, small_run)
    cached = cache_home / "snakemake" / "snakemake" / "source-cache" / "hosted-git"
    assert (cached / "githubfile" / "github.com" / GITHUB_REPO / REMOTE_TAG / "Snakefile").is_file()


def test_a_remote_module_of_another_version_than_the_installed_package_is_refused(
    tmp_path: Path,
) -> None:
    repository = workflow_repository(tmp_path / "repository", version="9.9.9")
    workdir = deployment(tmp_path / "analysis", f"git+file://{repository}/Snakefile@main")
    result = run_snakemake(workdir, "--dry-run", check=False, env=remote_env(tmp_path / "c"))
    printed = result.stdout + result.stderr
    assert result.returncode == 1, printed
    assert "version 9.9.9; its Python package sdcnn is version 0.1.0" in printed
    assert not (workdir / "results").exists()
