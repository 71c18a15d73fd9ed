"""A process killed with SIGKILL in the middle of writing an output leaves no half file.

Every single-file output (weights, prediction JSON, summary CSV and JSON, manifest, the
report pages) is written by the project's real writer in a child process that freezes
half-way through the file's bytes (tests/support/crash_writer.py: the lowest write it reaches is
patched to write half, flush, say so through a pipe and block).  The test kills the child
with SIGKILL and looks at the final name: nothing there, or, when an earlier good file was
there, that file byte for byte.  A writer that wrote in place would leave the half file
under the final name, and fail here.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import crash_writer
from tests.support.workspace import REPO

READY_TIMEOUT_S = 120
EARLIER = b"an earlier, complete version of this output\n"


def kill_mid_write(kind: str, target: Path, setup: Path) -> tuple[Path, int, int]:
    """Run the writer of ``kind`` until it is frozen half-way, then SIGKILL it.

    Returns the path it was writing when it froze, the bytes that reached that file and the
    bytes that write was asked to write."""
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, str(Path(crash_writer.__file__)), kind, str(target), str(setup),
         str(write_fd)],
        pass_fds=(write_fd,), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], READY_TIMEOUT_S)
        message = os.read(read_fd, 4096).decode() if ready else ""
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        os.close(read_fd)
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, (
        f"the {kind} writer was to be killed mid-write, but it ended with status "
        f"{child.returncode} ({message.strip() or 'no message'}):\n{output[-3000:]}"
    )
    assert message.count(" ") >= 2 and not message.startswith("finished"), (
        f"the {kind} writer never reached a write into a file named like {target.name}: "
        f"{message!r}\n{output[-3000:]}"
    )
    path, written, asked = message.rsplit(" ", 2)
    return Path(path), int(written), int(asked)


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    setup = tmp_path_factory.mktemp("crash_inputs")
    for kind in crash_writer.WRITERS:
        crash_writer.prepare(kind, setup)
    return setup


@pytest.mark.parametrize("earlier", [False, True], ids=["new", "replacing"])
@pytest.mark.parametrize("kind", sorted(crash_writer.WRITERS))
def test_sigkill_mid_write_leaves_no_half_file_under_the_final_name(
    kind: str, earlier: bool, setup_dir: Path, tmp_path: Path
) -> None:
    name, _ = crash_writer.WRITERS[kind]
    target = tmp_path / "results" / name
    if earlier:
        target.parent.mkdir(parents=True)
        target.write_bytes(EARLIER)
    frozen_in, written, asked = kill_mid_write(kind, target, setup_dir)
    # the kill really came mid-write: the file being written held part of its bytes
    assert 0 < written < asked or (written == 0 and asked == 1), (
        f"{kind}: the writer froze with {written} of {asked} bytes in {frozen_in}"
    )
    if earlier:
        assert target.read_bytes() == EARLIER, (
            f"{kind}: killed mid-write, the writer left {target.stat().st_size} bytes under "
            f"the final name {target.name} in place of the earlier complete file (it wrote "
            f"{frozen_in.name} in place, not to a temporary file)"
        )
    else:
        assert not target.exists(), (
            f"{kind}: killed mid-write, the writer left a half-written {target.name} "
            f"({target.stat().st_size} of its bytes) under its final name"
        )
    assert frozen_in != target, f"{kind}: the bytes went straight into {target.name}"
    assert frozen_in.parent == target.parent, (
        f"{kind}: the temporary {frozen_in} is not beside {target} (a rename across "
        "file systems is not atomic)"
    )


@pytest.mark.parametrize("kind", sorted(crash_writer.WRITERS))
def test_the_writer_run_again_completes_the_output(
    kind: str, setup_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a kill, the same writer (not frozen) writes the whole file under its name."""
    name, writer = crash_writer.WRITERS[kind]
    target = tmp_path / "results" / name
    kill_mid_write(kind, target, setup_dir)
    monkeypatch.chdir(setup_dir)
    writer(target, setup_dir)
    assert target.is_file() and target.stat().st_size > 0, f"{kind}: no {name} after a re-run"
