"""Shards (sdcnn/core/shards.py): a stable function of the id, their names, their quotas."""

from __future__ import annotations

import pytest

from sdcnn.core.shards import assign_shards, shard_index, shard_name

# ---- shards


def test_shards_are_a_stable_function_of_the_id_alone() -> None:
    ids = [f"prompt{i}" for i in range(200)]
    shards = assign_shards(ids, 8)
    assert 1 <= len(shards) <= 8
    assert sorted(p for members in shards.values() for p in members) == sorted(ids)
    # adding and removing prompts moves no other prompt
    more = assign_shards([*ids[50:], "new1", "new2"], 8)
    where = {p: name for name, members in shards.items() for p in members}
    where_after = {p: name for name, members in more.items() for p in members}
    assert all(where_after[p] == where[p] for p in ids[50:])
    # the shard of an id is written down once and for all (a change would move every prompt)
    assert (
        shard_index("city", 4)
        == int.from_bytes(__import__("hashlib").sha256(b"city").digest()[:8], "big") % 4
    )


def test_shard_names_sort_and_say_how_many() -> None:
    assert shard_name(0, 4) == "1-of-4"
    assert shard_name(2, 16) == "03-of-16"
    assert [shard_name(i, 100) for i in (0, 9, 99)] == ["001-of-100", "010-of-100", "100-of-100"]


def test_only_non_empty_shards_and_config_order_inside() -> None:
    shards = assign_shards(["b", "a", "c"], 1000)
    assert len(shards) == 3
    assert assign_shards(["b", "a", "c"], 1) == {"1-of-1": ["b", "a", "c"]}
    assert assign_shards(["b", "a"], None) == {"b": ["b"], "a": ["a"]}


# ---- what is drawn grows with what a person can look at (figures.*)


def test_quota_shares_the_runs_pictures_out_over_the_shards() -> None:
    from sdcnn.core.shards import quota

    assert [quota(24, index, 8) for index in range(8)] == [3] * 8
    assert [quota(10, index, 4) for index in range(4)] == [3, 3, 2, 2]
    assert sum(quota(7, index, 100) for index in range(100)) == 7
    assert quota(None, 3, 4) is None
    with pytest.raises(ValueError):
        quota(5, 4, 4)
