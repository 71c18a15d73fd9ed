"""Resource values (sdcnn/core/resources.py): Snakemake's numbers and the gpu resource."""

from __future__ import annotations

from sdcnn.core.resources import resource_number


def test_gpus_requested_reads_the_gpu_resource() -> None:
    from sdcnn.core.resources import gpus_requested

    assert gpus_requested({}) == 0
    assert gpus_requested({"gpu": 1}) == 1
    assert gpus_requested({"gpu": 0, "mem_mb": 1000}) == 0


def test_resource_numbers_from_snakemake_values() -> None:
    class Resource:
        value = 2

    assert resource_number({"gpu": Resource()}, "gpu", 0) == 2
    assert resource_number({"gpu": None}, "gpu", 1) == 0
    assert resource_number({}, "gpu", 3) == 3
