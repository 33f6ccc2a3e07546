"""Pass 1 is exact: the same moments whatever the chunking and the number of workers."""

from __future__ import annotations

import numpy as np

from stacrrn import compute_statistics, make_plan
from tests.conftest import BAHAMAS, needs_shared, read

pytestmark = needs_shared


def test_statistics_independent_of_chunking_and_workers():
    coarse = compute_statistics(make_plan(BAHAMAS, chunk_size=1024), workers=1)
    fine = compute_statistics(make_plan(BAHAMAS, chunk_size=97), workers=2)
    assert coarse.pairs.keys() == fine.pairs.keys() and len(coarse.pairs) >= 4
    for a, b in zip(coarse.images, fine.images, strict=True):
        assert a.n == b.n
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
        np.testing.assert_allclose(a.m2, b.m2, rtol=1e-9)
    for key, pm in coarse.pairs.items():
        np.testing.assert_allclose(pm.c_ij, fine.pairs[key].c_ij, rtol=1e-9)
    for a, b in zip(coarse.image_blocks, fine.image_blocks, strict=True):
        np.testing.assert_array_equal(a.n, b.n)
        np.testing.assert_allclose(a.sums, b.sums, rtol=1e-12)


def test_image_moments_match_the_pixels():
    stats = compute_statistics(make_plan(BAHAMAS))
    for path, m in zip(BAHAMAS, stats.images, strict=True):
        data = read(path)
        valid = (data != 0).all(axis=0)
        np.testing.assert_allclose(m.mean, data[:, valid].mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(m.std, data[:, valid].std(axis=1), rtol=1e-9)
        assert m.n == valid.sum()


def test_statistics_deterministic_with_workers():
    plan = make_plan(BAHAMAS, chunk_size=97)
    first = compute_statistics(plan, workers=2).to_dict()
    assert compute_statistics(plan, workers=2).to_dict() == first


def test_a_long_series_is_streamed_with_the_same_statistics(tmp_path, monkeypatch):
    """Nine dates over every chunk: streamed three at a time (nearest-date graph) or all at once, same moments."""
    from dataclasses import replace

    import rasterio

    import stacrrn.pipeline.passes.statistics as pass1
    from stacrrn.samples import landscape
    from tests.conftest import write_raster

    truth = landscape(96, 96, seed=5)
    transform = rasterio.Affine(10.0, 0, 500000.0, 0, -10.0, 4600000.0)
    paths = [
        write_raster(
            tmp_path / f"d{k}.tif",
            np.clip(truth * (0.9 + 0.02 * k) + 10 * k, 1, 65535).astype("uint16"),
            transform,
            nodata=0,
        )
        for k in range(9)
    ]
    plan = replace(make_plan(paths, chunk_size=64), pairs=frozenset((i, i + 1) for i in range(8)))
    reads: list[list[int]] = []
    reader = plan.read_chunk
    plan = replace(plan, read_chunk=lambda box, images: reads.append(images) or reader(box, images))
    streamed = compute_statistics(plan).to_dict()
    assert max(len(r) for r in reads) == 1
    monkeypatch.setattr(pass1, "MAX_CHUNK_IMAGES", 9)
    reads.clear()
    assert compute_statistics(plan).to_dict() == streamed
    assert max(len(r) for r in reads) == 9
