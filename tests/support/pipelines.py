"""The tiny family pipelines (tests/support/families.py) as ModelSources, loaded on the CPU in
float32, shared by tests/unit/generate/test_pipeline.py, tests/unit/generate/test_model_source.py
and tests/unit/config/test_check.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdcnn.generate.model_source import ModelSource
from sdcnn.generate.pipeline import GenerationSettings, load_pipeline

SETTINGS = GenerationSettings(
    steps=2, guidance_scale=4.0, base_seed=1
)  # native size, own scheduler


def model(folder: Path) -> ModelSource:
    return ModelSource("local", str(folder), folder.name)


def load(folder: Path, scheduler: str = "default") -> Any:
    import torch

    pipeline = load_pipeline(
        model(folder),
        device="cpu",
        dtype=torch.float32,
        scheduler=scheduler,
        allow_download=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
