"""The project's file writing (sdcnn/core/fileio.py): one JSON style for every output, atomic
files and folders, and stale temporaries cleaned up without a race.

A process killed with SIGKILL in the middle of writing an output leaves no half file: every
single-file output (weights, prediction JSON, summary CSV and JSON, manifest, the report
pages) is written by the project's real writer in a child process that freezes half-way
through the file's bytes (tests/support/crash_writer.py: the lowest write it reaches is
patched to write half, flush, say so through a pipe and block).  The test kills the child
with SIGKILL and looks at the final name: nothing there, or, when an earlier good file was
there, that file byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from sdcnn.core.fileio import (
    atomic_directory,
    atomic_path,
    dumps_json,
    dumps_json_around,
    remove_stale_temporaries,
    sha256_file,
)
from tests.support import crash_writer
from tests.support.workspace import REPO


def test_every_json_output_has_one_style() -> None:
    text = dumps_json({"b": [1, 2.5], "é": "ü ✓", "n": None})
    assert text == '{\n  "b": [\n    1,\n    2.5\n  ],\n  "é": "ü ✓",\n  "n": null\n}\n', text


def test_json_outputs_refuse_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps_json({"p": float("nan")})


def test_a_stale_temporary_gone_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another cleaner may remove a stale file between the listing and the unlink."""
    final = tmp_path / "images"
    vanished = tmp_path / ".images.abc.tmp"  # listed, but no longer there
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    remove_stale_temporaries(final)


def test_a_stale_temporary_folder_gone_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for a file: another cleaner may remove a stale folder after it was seen to be one."""
    final = tmp_path / "images"
    vanished = tmp_path / ".images.abc.tmp"  # listed as a folder, but no longer there
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter([vanished]))
    monkeypatch.setattr(Path, "is_dir", lambda self: True)
    remove_stale_temporaries(final)


def test_hashing_a_large_file_holds_only_a_chunk_of_it(tmp_path: Path) -> None:
    """A multi-gigabyte checkpoint is hashed in 1 MiB reads, never read into memory whole."""
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB, not all one byte
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        digest = sha256_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(data).hexdigest()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held while hashing a 12 MiB file"


@pytest.mark.parametrize("key", ["rows", "files"])
def test_a_streamed_list_between_the_cut_gives_the_whole_documents_bytes(key: str) -> None:
    """What summary and manifest stream: the text before the list's items, the items
    (indented by 4 spaces, joined by ",\\n"), then the text after."""
    items = [{"a": 1, "é": [True, None]}, "two", 3.5]
    document = {"before": {"x": [1, 2]}, key: items, "after": "end"}
    head, tail = dumps_json_around({**document, key: []}, key)
    streamed = ",\n".join(
        "\n".join("    " + line for line in dumps_json(item).rstrip("\n").split("\n"))
        for item in items
    )
    assert head + streamed + tail == dumps_json(document)
    assert list(json.loads(head + tail)) == ["before", key, "after"]  # the keys' order kept


def test_the_cut_is_at_no_text_of_the_document_spelt_like_its_placeholder() -> None:
    """Keys and values spelt like the placeholder, before and after the list, are kept
    where they are; the cut is at the list's own item."""
    spelt = {"@@sdcnn-rows-0@@": "@@sdcnn-rows-0@@", "@@sdcnn-rows-1@@": ["@@sdcnn-rows-1@@"]}
    document = {"columns": spelt, "rows": [], "metrics": spelt}
    head, tail = dumps_json_around(document, "rows")
    whole = json.loads(head + '    "item"' + tail)
    assert whole == {**document, "rows": ["item"]}


READY_TIMEOUT_S = 120
EARLIER = b"an earlier, complete version of this output\n"


def kill_mid_write(kind: str, target: Path, setup: Path) -> tuple[Path, int, int]:
    """Run the writer of ``kind`` until it is frozen half-way, then SIGKILL it.

    Returns the path it was writing when it froze, the bytes that reached that file and the
    bytes that write was asked to write."""
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(crash_writer.__file__)),
            kind,
            str(target),
            str(setup),
            str(write_fd),
        ],
        pass_fds=(write_fd,),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
    )
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


# ---- atomic outputs


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_directory_keeps_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "images"
    with atomic_directory(target) as temporary:
        (temporary / "a.png").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_directory(target) as temporary:
        (temporary / "a.png").write_bytes(b"new, half")
        raise RuntimeError("failed mid-way")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images"]
    assert (target / "a.png").read_bytes() == b"old"


def test_atomic_directory_clears_what_a_killed_attempt_left(tmp_path: Path) -> None:
    stale = tmp_path / ".images.abc123.tmp"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"half")
    with atomic_directory(tmp_path / "images") as folder:
        (folder / "done.png").write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["done.png"]


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    from sdcnn.core.fileio import write_bytes_atomic

    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "file.json", b"{}")
        with atomic_directory(tmp_path / "folder") as folder:
            (folder / "x.png").write_bytes(b"png")
    finally:
        os.umask(old)
    assert (tmp_path / "file.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
