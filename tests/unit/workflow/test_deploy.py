"""Deployment checks (sdcnn/workflow/deploy.py)."""

from __future__ import annotations

import io

from sdcnn.workflow.deploy import remote_package_problem


def test_a_remote_module_needs_the_installed_package_of_its_version() -> None:
    import sdcnn

    same = io.BytesIO(f'[project]\nversion = "{sdcnn.__version__}"\n'.encode())
    assert remote_package_problem(same, "github.com/x/sdcnn") is None
    other = io.BytesIO(b'[project]\nversion = "9.9.9"\n')
    problem = remote_package_problem(other, "github.com/x/sdcnn")
    assert problem and "version 9.9.9" in problem and f"is version {sdcnn.__version__}" in problem
