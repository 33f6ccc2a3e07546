"""PIF masks in pass 1: pair masks and held-out cells keep the statistics exact and chunk independent."""

from __future__ import annotations

import numpy as np
import pytest

from stacrrn.core.global_model import orthogonal_slope, solve_global
from stacrrn.core.moments import PairMoments
from stacrrn.core.pif import holdout_cells, spectral_invariant
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box, Grid


def test_holdout_cells_are_whole_cells_independent_of_the_chunk_and_near_the_share():
    whole = holdout_cells(Box(0, 0, 512, 512), 0.2)
    assert abs(whole.mean() - 0.2) < 0.03
    part = holdout_cells(Box(37, 101, 300, 260), 0.2)
    assert np.array_equal(part, whole[37:300, 101:260])
    cells = whole.reshape(32, 16, 32, 16)
    assert np.all(cells.all(axis=(1, 3)) | ~cells.any(axis=(1, 3)))  # all or nothing per 16x16 cell
    assert not holdout_cells(Box(0, 0, 8, 8), 0.0).any()


def test_spectral_invariant_keeps_bare_ground_and_drops_vegetation_water_and_cloud():
    red = np.array([0.15, 0.05, 0.02, 0.5, np.nan])
    nir = np.array([0.2, 0.4, 0.01, 0.55, 0.2])
    assert spectral_invariant(red, nir).tolist() == [True, False, False, False, False]


def test_pair_mask_and_holdout_give_the_same_statistics_for_any_chunking():
    rng = np.random.default_rng(5)
    a = rng.gamma(2.0, 300.0, size=(2, 64, 80)) + 500
    b = a * 1.1 + rng.normal(0, 20, a.shape)
    valid = np.ones((64, 80), bool)
    grid = Grid("EPSG:32633", (1.0, 0, 0, 0, -1.0, 0), 80, 64)
    blocks = BlockGrid.over(grid, 16, 16)

    def pif(box, i, j, xi, xj):  # depends on the pixel's values only
        return np.abs(xj[0] - 1.1 * xi[0]) < 20

    def run(boxes):
        stats = Statistics.empty(2, [grid.box, grid.box], blocks)
        for box in boxes:
            layers = {
                0: (a[:, box.row0 : box.row1, box.col0 : box.col1], valid[box.row0 : box.row1, box.col0 : box.col1])
            }
            layers[1] = (b[:, box.row0 : box.row1, box.col0 : box.col1], layers[0][1])
            stats.add(chunk_statistics(box, layers, blocks, pair_mask=pif, holdout=holdout_cells(box, 0.3)))
        return stats

    one = run([grid.box])
    four = run([Box(r, c, r + 32, c + 40) for r in (0, 32) for c in (0, 40)])
    expected = (np.abs(b[0] - 1.1 * a[0]) < 20) & ~holdout_cells(grid.box, 0.3)
    assert one.pairs[(0, 1)].n == four.pairs[(0, 1)].n == expected.sum()
    assert one.overlaps[(0, 1)] == four.overlaps[(0, 1)] == 64 * 80
    assert one.images[0].n == 64 * 80  # image moments keep every valid pixel
    np.testing.assert_allclose(one.pairs[(0, 1)].c_ij, four.pairs[(0, 1)].c_ij, rtol=1e-12)
    np.testing.assert_allclose(one.holdout_blocks[(0, 1)].sums, four.holdout_blocks[(0, 1)].sums, rtol=1e-12)
    restored = Statistics.from_dict(one.to_dict())
    assert restored.overlaps == one.overlaps
    np.testing.assert_array_equal(restored.holdout_blocks[(0, 1)].sums, one.holdout_blocks[(0, 1)].sums)


def test_orthogonal_slope_matches_total_least_squares():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 10, (1, 5000))
    y = 0.7 * x + rng.normal(0, 2, x.shape) + 5
    pm = PairMoments.of(x, y)
    d = np.vstack([x[0] - x.mean(), y[0] - y.mean()])
    u, _, _ = np.linalg.svd(d, full_matrices=False)
    normal = u[:, -1]  # the line's normal: direction of least spread
    assert orthogonal_slope(pm)[0] == pytest.approx(-normal[0] / normal[1], rel=1e-9)
    flipped = PairMoments.of(y, x)  # the same line seen from the other image: slope inverts
    assert orthogonal_slope(flipped)[0] == pytest.approx(1 / orthogonal_slope(pm)[0], rel=1e-9)


def test_orthogonal_slope_falls_back_to_the_spread_ratio_without_correlation():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 10, (1, 20000))
    y = 2 * rng.normal(0, 10, x.shape) + 0.003 * x  # nearly uncorrelated, twice the spread
    pm = PairMoments.of(x, y)
    assert orthogonal_slope(pm)[0] == pytest.approx(pm.std_j[0] / pm.std_i[0])
    flat = PairMoments.of(x, np.full_like(x, 5.0))  # a constant band: no NaN, no inf
    assert np.isfinite(orthogonal_slope(flat)).all()


def test_orthogonal_estimator_recovers_gains_when_both_images_are_noisy():
    rng = np.random.default_rng(8)
    truth = rng.gamma(2.0, 300.0, size=(1, 200_000))
    gains = [1.0, 1.25]
    noisy = [g * truth + rng.normal(0, 60, truth.shape) for g in gains]  # equal noise in both
    pm = PairMoments.of(noisy[0], noisy[1])
    from stacrrn.core.moments import ImageMoments

    images = [ImageMoments.of(v) for v in noisy]
    for estimator in ("spread", "orthogonal"):
        fit = solve_global(images, {(0, 1): pm}, references=[0], estimator=estimator)
        print(estimator, fit.gains[1, 0] * 1.25)
        assert fit.gains[1, 0] * 1.25 == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="unknown estimator"):
        solve_global(images, {(0, 1): pm}, estimator="ols")
