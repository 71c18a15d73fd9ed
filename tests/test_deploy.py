"""The workflow used as a Snakemake module, and deployed with snakedeploy, end to end.

Both run in a folder of their own, with their own config/config.yaml, far from the
workflow's files: paths must follow the workflow's own files (workflow.current_basedir,
workflow.source_path), not the main Snakefile's folder or the working directory.  Their
outputs must be the bytes of a plain run of the same config.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMALL_CONFIG, copy_workflow, result_files, run_snakemake, write_config

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
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
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
