"""Image ids (sdcnn/core/naming.py): the prompt id and the image's index."""

from __future__ import annotations

from sdcnn.core.naming import image_id, image_ids


def test_image_ids_are_the_prompt_and_a_three_digit_index() -> None:
    assert image_id("city", 7) == "city_007"
    assert image_id("city", 1234) == "city_1234"
    assert image_ids("harbor", 3) == ["harbor_000", "harbor_001", "harbor_002"]
    assert image_ids("x", 0) == []
