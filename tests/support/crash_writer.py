"""A writer that freezes half-way through a file, for tests/unit/core/test_fileio.py.

Run as ``python tests/support/crash_writer.py KIND TARGET SETUP_DIR READY_FD``: it calls the
project's real writer for KIND (``sdcnn.classify.weights.save_weights``, the torch predict step,
``sdcnn.reporting.summary.write_summary``, ``sdcnn.reporting.manifest.write_manifest``, the report
pages),
which writes TARGET.  Beforehand it replaces the lowest write the writer reaches
(``io.open``, and the Rust ``serialize_file`` of safetensors by its own bytes written through
``io.open``): the first write into a file whose name contains TARGET's name, under the
writer's own name for it (the final name or a temporary one), writes half of its bytes,
flushes them to the disk, reports ``<path> <bytes written> <bytes asked>`` on READY_FD and
blocks for ever.  The test then kills the process with SIGKILL.

``prepare(KIND, SETUP_DIR)`` (imported by the test) makes the inputs each writer needs.
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LABELS = ["cat", "dog", "ship"]
IMAGE_IDS = ["p_000", "p_001"]
SIZE = 16


# ---- the inputs of each writer (made by the test, with nothing patched)


def _weights_path(setup: Path) -> Path:
    return setup / "weights.safetensors"


def prepare(kind: str, setup: Path) -> None:
    import numpy as np

    from sdcnn.classify.weights import CNNWeights, init_weights, save_weights
    from sdcnn.core.fileio import write_json_atomic

    setup.mkdir(parents=True, exist_ok=True)
    save_weights(_weights_path(setup), CNNWeights(init_weights(3, 1, SIZE, len(LABELS)).tensors))
    tensors = setup / "tensors"
    tensors.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for stem in IMAGE_IDS:
        np.save(tensors / f"{stem}.npy", rng.random((1, SIZE, SIZE), dtype=np.float32))
    for prompt in ("a", "b"):
        images = [
            {
                "image_id": f"{prompt}_{index:03d}",
                "tensor": f"t/{prompt}_{index:03d}.npy",
                "tensor_sha256": "0" * 64,
                "probabilities": dict(zip(LABELS, (0.2, 0.5, 0.3), strict=True)),
                "top_label": "dog",
                "top_probability": 0.5,
            }
            for index in range(2)
        ]
        write_json_atomic(
            setup / f"{prompt}.json",
            {
                "schema": "sdcnn-predictions/1",
                "prompt_id": prompt,
                "backend": "torch",
                "device": "cpu",
                "labels": LABELS,
                "weights": {"path": "w", "sha256": "0" * 64},
                "images": images,
            },
        )
    write_json_atomic(
        setup / "summary.json",
        {
            "columns": [
                "prompt_id",
                "image_id",
                "top_label",
                "top_probability",
                "backend",
                "device",
                *(f"p_{label}" for label in LABELS),
            ],
            "rows": [
                {
                    "prompt_id": "a",
                    "image_id": "a_000",
                    "top_label": "dog",
                    "top_probability": 0.5,
                    "backend": "torch",
                    "device": "cpu",
                    "p_cat": 0.2,
                    "p_dog": 0.5,
                    "p_ship": 0.3,
                }
            ],
        },
    )
    write_json_atomic(
        setup / "manifest.json",
        {
            "config_sha256": "0" * 64,
            "backends": ["torch"],
            "versions": {"python": "3"},
            "files": [{"path": "results/x.png", "size": 1000, "sha256": "1" * 64}],
        },
    )


def _predictions(setup: Path) -> list[str]:
    return [str(setup / "a.json"), str(setup / "b.json")]


# ---- the real writers, one per kind of output; each writes ``target``


def _weights(target: Path, setup: Path) -> None:
    from sdcnn.classify.weights import CNNWeights, init_weights, save_weights

    save_weights(target, CNNWeights(init_weights(4, 1, SIZE, len(LABELS)).tensors))


def _prediction(target: Path, setup: Path) -> None:
    from sdcnn.classify.prediction import predict_prompt

    predict_prompt(
        backend="torch",
        julia_project="julia",
        prompt_id="p",
        tensor_dir=str(setup / "tensors"),
        image_ids=IMAGE_IDS,
        weights_path=str(_weights_path(setup)),
        labels=LABELS,
        output_path=str(target),
        gpus=0,
        threads=1,
    )


def _summary_csv(target: Path, setup: Path) -> None:
    from sdcnn.reporting.summary import write_summary

    write_summary(_predictions(setup), str(target), str(target.with_name("other.json")))


def _summary_json(target: Path, setup: Path) -> None:
    from sdcnn.reporting.summary import write_summary

    write_summary(_predictions(setup), str(target.with_name("other.csv")), str(target))


def _manifest(target: Path, setup: Path) -> None:
    from sdcnn.reporting.manifest import write_manifest

    outputs = [str(setup / "tensors"), str(_weights_path(setup)), *_predictions(setup)]
    write_manifest(str(target), outputs, _predictions(setup), "0" * 64)


def _summary_page(target: Path, setup: Path) -> None:
    from sdcnn.reporting.pages import write_summary_page

    write_summary_page(setup / "summary.json", target)


def _run_info_page(target: Path, setup: Path) -> None:
    from sdcnn.reporting.pages import write_run_info

    write_run_info({"prompts": {}}, setup / "manifest.json", target)


WRITERS: dict[str, tuple[str, Callable[[Path, Path], None]]] = {
    # kind: (the output's file name, its writer)
    "weights": ("cnn.safetensors", _weights),
    "prediction": ("p.json", _prediction),
    "summary_csv": ("summary.csv", _summary_csv),
    "summary_json": ("summary.json", _summary_json),
    "manifest": ("manifest.json", _manifest),
    "summary_page": ("summary.html", _summary_page),
    "run_info_page": ("run_info.html", _run_info_page),
}


# ---- freezing half-way


class _FreezingFile:
    """A file object whose first write stops half-way, for ever."""

    def __init__(self, real: Any, path: str, ready_fd: int) -> None:
        self._real, self._path, self._ready_fd = real, path, ready_fd

    def write(self, data: Any) -> int:
        view = data if isinstance(data, str) else memoryview(data).cast("B")
        half = len(view) // 2
        self._real.write(view[:half])
        self._real.flush()
        os.fsync(self._real.fileno())
        written = os.path.getsize(self._path)
        os.write(self._ready_fd, f"{self._path} {written} {len(view)}\n".encode())
        while True:  # until SIGKILL
            time.sleep(60)

    def __enter__(self) -> _FreezingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def freeze_writes_to(name: str, ready_fd: int) -> None:
    """From now on, the first write into a file whose name contains ``name`` freezes."""
    real_open = io.open

    def patched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        if writing and isinstance(file, str | os.PathLike) and name in os.path.basename(file):
            return _FreezingFile(handle, os.fspath(file), ready_fd)
        return handle

    io.open = builtins.open = patched_open

    import safetensors.numpy as safetensors_numpy

    def serialize_file(flat: Any, filename: Any, metadata: Any = None) -> None:
        # the Rust writer's very bytes, written through (patched) io.open
        data = safetensors_numpy.serialize(flat, metadata=metadata)
        with open(filename, "wb") as handle:
            handle.write(data)

    safetensors_numpy.serialize_file = serialize_file


def main(kind: str, target: str, setup: str, ready_fd: int) -> None:
    sys.path.insert(0, str(REPO))
    name, writer = WRITERS[kind]
    assert Path(target).name == name, f"{kind} writes {name}, not {target}"
    freeze_writes_to(name, ready_fd)
    writer(Path(target), Path(setup))
    os.write(ready_fd, b"finished without freezing\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
