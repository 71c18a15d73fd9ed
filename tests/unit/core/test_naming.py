"""Image ids (sdcnn/core/naming.py): the prompt id, the image's index, and the held-out split."""

from __future__ import annotations

from sdcnn.core.naming import HOLDOUT, TRAIN, image_id, image_ids, split_of


def test_image_ids_are_the_prompt_and_a_three_digit_index() -> None:
    assert image_id("city", 7) == "city_007"
    assert image_id("city", 1234) == "city_1234"
    assert image_ids("harbor", 3) == ["harbor_000", "harbor_001", "harbor_002"]
    assert image_ids("x", 0) == []


def test_every_holdout_every_th_image_is_held_out() -> None:
    """README: with holdout_every 4, the 4th, 8th and 12th image (indices 3, 7, 11) of a
    labelled prompt are held out, the others train; the split is written as "train" or
    "holdout" (the summary's SPLITS)."""
    holdout = [index for index in range(12) if split_of(index, 4) == HOLDOUT]
    assert holdout == [3, 7, 11]
    assert all(split_of(index, 4) == TRAIN for index in range(12) if index not in holdout)
    assert [split_of(index, 2) for index in range(4)] == [TRAIN, HOLDOUT, TRAIN, HOLDOUT]
    assert (TRAIN, HOLDOUT) == ("train", "holdout")


def test_a_prompt_of_n_images_holds_out_n_over_holdout_every() -> None:
    """A prompt's first n images hold out n // holdout_every, whatever n: one more image
    adds at most one held-out image and moves none of the others."""
    for holdout_every in (2, 3, 4, 7):
        for n_images in range(30):
            splits = [split_of(index, holdout_every) for index in range(n_images)]
            assert splits.count(HOLDOUT) == n_images // holdout_every, (holdout_every, n_images)


def test_every_kth_image_is_held_out_and_stays_so() -> None:
    assert [split_of(i, 4) for i in range(8)] == ["train"] * 3 + ["holdout"] + ["train"] * 3 + [
        "holdout"
    ]
    assert [split_of(i, 2) for i in range(4)] == ["train", "holdout", "train", "holdout"]
