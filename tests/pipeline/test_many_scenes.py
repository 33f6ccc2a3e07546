"""Many small scenes: chunks follow the scene density, and the statistics do not depend on it (issue 25).

A chunk of the common grid that meets more than
:data:`~stacrrn.pipeline.inputs.plan.CHUNK_IMAGES` scenes is quartered, so that pass 1 and the
mosaic hold few scenes per chunk. The real 16 Sentinel-2 tiles (about 270 px each, a 4 x 4
layout of about 1000 px) all meet the one 1024 px chunk of the plain layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import stacrrn.pipeline.inputs.plan as plan_module
from stacrrn.core.statistics import Statistics
from stacrrn.pipeline.inputs.plan import CHUNK_IMAGES, Plan, make_plan
from stacrrn.pipeline.passes.solve import quality_tables
from stacrrn.pipeline.passes.statistics import compute_statistics
from tests.conftest import S2_TILES, needs_shared

BANDS = [2, 3, 4]


def _counted(plan: Plan, reads: list[int]) -> Plan:
    """``plan`` whose reader records how many images each call reads."""
    reader = plan.read_chunk

    def read(box, images):  # type: ignore[no-untyped-def]
        reads.append(len(images))
        return reader(box, images)

    return Plan(**{**plan.__dict__, "read_chunk": read})


def _statistics(
    monkeypatch: pytest.MonkeyPatch, most: int, smallest: int
) -> tuple[Statistics, list[int], int, dict[str, Any]]:
    """Statistics, images per read, the images the chunks meet in all, and the quality tables."""
    monkeypatch.setattr(plan_module, "CHUNK_IMAGES", most)
    monkeypatch.setattr(plan_module, "SMALLEST_CHUNK", smallest)
    reads: list[int] = []
    plan = _counted(make_plan(S2_TILES, BANDS), reads)
    stats = compute_statistics(plan)
    return stats, reads, sum(len(plan.images_in(box)) for box in plan.chunks), quality_tables(plan, stats)


@needs_shared
def test_dense_chunks_read_few_scenes_and_give_the_same_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, plain_reads, plain_met, plain_tables = _statistics(monkeypatch, 10**6, 256)  # never split: one chunk
    dense, dense_reads, dense_met, dense_tables = _statistics(monkeypatch, CHUNK_IMAGES, 64)
    assert dense_tables == plain_tables  # the pairs listed do not depend on the chunks
    assert len(plain.overlaps) == 16 * 15 // 2 > len(plain_tables["pairs"])  # the one chunk recorded every pair
    assert plain_met == 16 and sum(plain_reads) > 2 * plain_met  # streamed: tiles read again for later pairs
    assert max(dense_reads) <= CHUNK_IMAGES and sum(dense_reads) == dense_met  # each chunk's tiles read once
    assert dense.overlaps.keys() <= plain.overlaps.keys()
    assert {k: n for k, n in plain.overlaps.items() if n} == {k: n for k, n in dense.overlaps.items() if n}
    assert dense.pairs.keys() == plain.pairs.keys()
    for key, pm in plain.pairs.items():  # the same pixels summed in another order: float64 rounding only
        other = dense.pairs[key]
        assert other.n == pm.n
        np.testing.assert_allclose(other.mean_i, pm.mean_i, rtol=1e-12)
        np.testing.assert_allclose(other.c_ij, pm.c_ij, rtol=1e-9)
    for a, b in zip(plain.images, dense.images, strict=True):
        assert a.n == b.n
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-12)
        np.testing.assert_allclose(b.m2, a.m2, rtol=1e-9)
    for a, b in zip(plain.image_blocks, dense.image_blocks, strict=True):
        np.testing.assert_array_equal(b.n, a.n)
        np.testing.assert_allclose(b.sums, a.sums, rtol=1e-12)
