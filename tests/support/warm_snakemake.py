"""The real ``snakemake`` command without its imports at every call.

A server process imports Snakemake's CLI (and what it imports later: the report, the
executors) once, then forks a child for each run it is asked for. The child is what
``python -m snakemake ARGS`` would be: its own working directory, environment, stdout
and stderr files, ``snakemake.cli.main`` on the arguments, its exit status. Nothing of
the workflow is imported before the fork (a test may have edited the copy's ``sdcnn``),
only third-party code.

    server:  python tests/support/warm_snakemake.py  (requests on stdin, replies on stdout)
    client:  WarmSnakemake().run(cwd, args, env, timeout) -> (returncode, stdout, stderr)

It sets a private attribute of Snakemake's (``Workflow._rundir``, taken at import) in
each child, so it is used only with the Snakemake it was checked against
(``CHECKED_SNAKEMAKE``, by tests/workflow/test_warm_snakemake.py); with any other version
``warm_runs_checked()`` is false and the tests run ``python -m snakemake`` cold.

One request at a time, as JSON lines: the server answers ``{"pid": ...}`` when the child
has started and ``{"returncode": ...}`` when it has ended; a client that times out kills
the child's process group (it runs in a session of its own) and raises
``subprocess.TimeoutExpired``, as ``subprocess.run`` does.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# the Snakemake whose private Workflow._rundir the child sets, as checked by
# tests/workflow/test_warm_snakemake.py; with another version the tests run Snakemake cold
CHECKED_SNAKEMAKE = "9.27.1"


def installed_snakemake() -> str:
    """The installed Snakemake's version (from its metadata: Snakemake is not imported)."""
    return importlib.metadata.version("snakemake")


def warm_runs_checked() -> bool:
    """Whether the installed Snakemake is the one this server was checked against."""
    return installed_snakemake() == CHECKED_SNAKEMAKE


# imported once in the server (one that is missing is only not preloaded); never the
# workflow's own package
PRELOAD = [
    "snakemake.cli",
    "snakemake.api",
    "snakemake.dag",
    "snakemake.workflow",
    "snakemake.executors.local",
    "snakemake.executors.dryrun",
    "snakemake.report",
    "snakemake.report.html_reporter",
    "jsonschema",
    "smart_open",
    "nbformat",
    "yaml",
]


# ---- the server


def child(request: dict) -> None:
    """In the forked child: become ``python -m snakemake ARGS`` in the request's folder.
    Never returns: whatever happens, the child exits here (not into the server's loop)."""
    code = 1
    try:
        os.setsid()  # a process group of its own, so that a timeout kills its jobs too
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(request["stdout"], os.O_WRONLY | os.O_TRUNC)
        stderr = os.open(request["stderr"], os.O_WRONLY | os.O_TRUNC)
        for source, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, target)
            os.close(source)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.dont_write_bytecode = "PYTHONDONTWRITEBYTECODE" in os.environ
        import snakemake
        from snakemake.cli import main
        from snakemake.workflow import Workflow

        sys.argv = [str(Path(snakemake.__file__).with_name("__main__.py")), *request["args"]]
        sys.path[0] = os.getcwd()  # as `python -m` puts it, then PYTHONPATH's folders
        sys.path[1:1] = filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))
        Workflow._rundir = os.getcwd()  # Snakemake takes it at import, in a class attribute
        signal.signal(signal.SIGINT, signal.default_int_handler)
        main(request["args"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    except BaseException:  # what Python would print before exiting 1
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(name)
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


# ---- the client


class WarmSnakemake:
    """A client of one server, started on first use and ended with this process."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._unread = b""  # what the server has replied beyond the last line taken
        self._lock = threading.Lock()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
            self._unread = b""
        return self._server

    def _reply(self, server: subprocess.Popen[bytes], timeout: float) -> dict:
        """The server's next reply line, read straight from the pipe's descriptor (a
        buffered reader could hold the next line too, where select cannot see it)."""
        assert server.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._unread:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([server.stdout], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(server.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the warm snakemake server ended (exit {server.wait()})")
            self._unread += chunk
        line, _, self._unread = self._unread.partition(b"\n")
        return json.loads(line)

    def run(
        self, cwd: Path, args: Sequence[str], env: Mapping[str, str], timeout: float
    ) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of ``snakemake ARGS`` run in ``cwd``."""
        with self._lock, tempfile.TemporaryDirectory(prefix="warm-snakemake-") as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            out.touch()
            err.touch()
            server = self._started()
            assert server.stdin is not None
            request = {
                "cwd": str(cwd),
                "args": list(args),
                "env": dict(env),
                "stdout": str(out),
                "stderr": str(err),
            }
            server.stdin.write(json.dumps(request).encode() + b"\n")
            server.stdin.flush()
            pid = self._reply(server, 60)["pid"]
            try:
                returncode = self._reply(server, timeout)["returncode"]
            except TimeoutError:
                kill_process_group(pid)
                self._reply(server, 60)
                raise subprocess.TimeoutExpired(
                    ["snakemake", *args], timeout, out.read_text(), err.read_text()
                ) from None
            return returncode, out.read_text(), err.read_text()


def kill_process_group(pid: int) -> None:
    """SIGKILL the child's process group: the child and every job it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve()
