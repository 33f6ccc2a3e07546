"""Held-out validation: tests from pooled sums equal direct computation; corrections show up."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.pif import holdout_cells
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.core.validation import agreement, validate_holdout
from stacrrn.types import BlockGrid, Box, Grid


def sums(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.array([y.size, y.sum(), z.sum(), (y * y).sum(), (z * z).sum(), (y * z).sum()])


def test_agreement_matches_scipy_on_a_small_sample():
    rng = np.random.default_rng(1)
    y = rng.normal(100, 10, 200)
    z = 0.8 * y + 15 + rng.normal(0, 3, 200)
    a = agreement(sums(y, z))
    t, p = sps.ttest_rel(y, z)
    assert a.t == pytest.approx(t, rel=1e-9) and a.t_pvalue == pytest.approx(p, rel=1e-6)
    assert a.mean_difference == pytest.approx((y - z).mean())
    assert a.rmse == pytest.approx(np.sqrt(((y - z) ** 2).mean()))
    assert a.correlation == pytest.approx(np.corrcoef(y, z)[0, 1])
    assert a.variance_ratio == pytest.approx(y.var() / z.var())
    f_cdf = sps.f.cdf(y.var() / z.var(), 199, 199)
    assert a.f_pvalue == pytest.approx(2 * min(f_cdf, 1 - f_cdf))


def test_agreement_of_identical_values_and_of_too_few_pixels():
    same = agreement(sums(np.arange(10.0), np.arange(10.0)))
    assert same.t == 0 and same.rmse == 0 and same.variance_ratio == 1 and same.correlation == pytest.approx(1)
    assert np.isnan(agreement(sums(np.ones(2), np.ones(2))).t)


def test_holdout_validation_shows_an_injected_gain_before_and_its_removal_after():
    rng = np.random.default_rng(3)
    truth = rng.gamma(2.0, 300.0, size=(2, 96, 96)) + 500
    gain, offset = np.array([1.2, 0.9]), np.array([40.0, -25.0])
    grid = Grid("EPSG:32633", (1.0, 0, 0, 0, -1.0, 0), 96, 96)
    blocks = BlockGrid.over(grid, 32, 32)
    valid = np.ones((96, 96), bool)
    layers = {0: (truth, valid), 1: (truth * gain[:, None, None] + offset[:, None, None], valid)}
    stats = Statistics.empty(2, [grid.box, grid.box], blocks)
    for box in (Box(0, 0, 48, 96), Box(48, 0, 96, 96)):  # two chunks
        sub = {k: (v[:, box.row0 : box.row1], m[box.row0 : box.row1]) for k, (v, m) in layers.items()}
        stats.add(chunk_statistics(box, sub, blocks, holdout=holdout_cells(box, 0.25)))
    held = holdout_cells(grid.box, 0.25)
    assert stats.pairs[(0, 1)].n + stats.holdout_blocks[(0, 1)].n.sum() == 96 * 96
    assert stats.holdout_blocks[(0, 1)].n.sum() == held.sum()
    fit = GlobalFit(np.array([[1.0, 1.0], 1 / gain]), np.array([[0.0, 0.0], -offset / gain]), [[0, 1]], [[0]], [])
    (v0, v1) = validate_holdout(stats, fit, references=[0])
    assert v0.partners == [1] and v1.partners == [0]
    y, z = layers[1][0][:, held], truth[:, held]
    for b in range(2):
        before = v1.before[b]
        assert before.n == held.sum()
        assert before.mean_difference == pytest.approx((y[b] - z[b]).mean())
        assert before.variance_ratio == pytest.approx(gain[b] ** 2, rel=1e-9)
        after = v1.after[b]
        assert abs(after.mean_difference) < 1e-6 and after.rmse < 1e-7 * z[b].std() ** 2  # raw-sum rounding
        assert after.variance_ratio == pytest.approx(1.0, abs=1e-9)
        assert v0.before[b].mean_difference == pytest.approx(-before.mean_difference)
