"""The workflow deployed elsewhere: as a remote module (github(), git+file://) it has no
folder of its own, so its rules use the installed ``sdcnn``, which must be the module's.

Read by ``rules/common.smk`` at parse time, before any other part of the package.
"""

from __future__ import annotations

import tomllib
from importlib.util import find_spec
from typing import IO


def remote_package_problem(pyproject: IO[bytes], source: object) -> str | None:
    """Why the installed sdcnn cannot serve the rules of the module at ``source``, whose
    ``pyproject.toml`` is ``pyproject``; None when it can."""
    wanted = tomllib.load(pyproject)["project"]["version"]
    if find_spec("sdcnn") is None:
        found = "is not installed"
    else:
        from sdcnn import __version__ as installed

        if installed == wanted:
            return None
        found = f"is version {installed}"
    return (
        f"this workflow is used as a module from {source}, version {wanted}; its "
        f"Python package sdcnn {found} in this environment: install the module's own, "
        "e.g. pip install 'git+https://github.com/<org>/sdcnn@<its tag>' (README: "
        "Deploying it elsewhere)"
    )


def let_local_git_join_source_files() -> None:
    """Snakemake 9.27's LocalGitFile.join takes a str only, but a rule's script reaches
    it as a LocalSourceFile (jobs.py, _path_to_source_file): every script: rule of a
    git+file:// module fails with a TypeError.  Give it the str, as SourceFile.join does
    for the other kinds of source (this process only; a no-op once Snakemake does it)."""
    from snakemake.sourcecache import LocalGitFile, SourceFile

    join = LocalGitFile.join
    if getattr(join, "takes_source_files", False):
        return

    def join_path_or_source_file(self: LocalGitFile, path: object) -> object:
        if isinstance(path, SourceFile):
            path = path.get_path_or_uri(secret_free=False)
        return join(self, path)

    join_path_or_source_file.takes_source_files = True  # type: ignore[attr-defined]
    LocalGitFile.join = join_path_or_source_file  # type: ignore[method-assign]
