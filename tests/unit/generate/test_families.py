"""What differs between pipeline families (sdcnn/generate/families.py): the family a folder
says, the denoiser."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdcnn.generate import families
from sdcnn.generate.model_identity import model_class_name
from tests.support.families import FAMILIES, FAMILY_FACTS

# ---- the denoiser, the native size, the dtype: from the folder, and as loaded


@pytest.mark.parametrize("name", FAMILIES)
def test_the_folder_says_the_family(name: str, family_folders: dict[str, Path]) -> None:
    facts, folder = FAMILY_FACTS[name], family_folders[name]
    layout = families.read_layout(folder)
    assert layout is not None
    assert layout.class_name == facts["pipeline"] == model_class_name(str(folder))
    assert layout.denoiser_key == facts["denoiser"]
    assert (
        families.is_flow_matching(layout.scheduler_class, layout.scheduler)
        is (facts["flow_matching"])
    )
    assert families.vae_scale_factor(layout.vae) == facts["vae_scale_factor"]


def test_a_denoiser_is_a_transformer_or_a_unet() -> None:
    class OnlyTransformer:
        transformer = object()

    class Both:
        transformer, unet = object(), object()

    assert families.denoiser_key(OnlyTransformer()) == "transformer"
    assert families.denoiser_key(Both()) == "transformer"  # diffusers' CLI order
    with pytest.raises(ValueError, match="neither"):
        families.denoiser_key(object())
