"""Quality metrics against hand-computed values and against the pixels they summarize."""

from __future__ import annotations

import numpy as np
import pytest

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.metrics import OverlapDifferences, affine_residual, overlap_consistency
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box


def test_overlap_differences_by_hand():
    xi = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    xj = np.array([[[1.0, 4.0], [0.0, 9.0]]])
    vi = np.ones((2, 2), bool)
    vj = np.array([[True, True], [True, False]])  # the 9 is not compared
    d = OverlapDifferences.empty(1)
    d.add(xi, vi, xj, vj)
    # differences 0, -2, 3 -> MAE 5/3, RMSE sqrt(13/3)
    assert d.to_dict() == {"rmse": [pytest.approx(np.sqrt(13 / 3))], "mae": [pytest.approx(5 / 3)], "pixels": [3]}
    d.add(xi, vi, xj.astype(np.float32), vi)  # all valid in both: differences 0, -2, 3, -5 (in float64)
    assert d.to_dict() == {"rmse": [pytest.approx(np.sqrt(51 / 7))], "mae": [pytest.approx(15 / 7)], "pixels": [7]}


def test_overlap_differences_per_band_masks_and_merge():
    rng = np.random.default_rng(0)
    xi, xj = rng.normal(size=(2, 3, 8, 8))
    vi = rng.random((3, 8, 8)) > 0.3
    vj = rng.random((8, 8)) > 0.3
    whole = OverlapDifferences.empty(3)
    whole.add(xi, vi, xj, vj)
    parts = OverlapDifferences.empty(3)
    for rows in (slice(0, 5), slice(5, 8)):
        part = OverlapDifferences.empty(3)
        part.add(xi[:, rows], vi[:, rows], xj[:, rows], vj[rows])
        parts.merge(part)
    for key in ("rmse", "mae", "pixels"):
        assert whole.to_dict()[key] == pytest.approx(parts.to_dict()[key])
    for b in range(3):
        both = vi[b] & vj
        diff = (xi[b] - xj[b])[both]
        assert whole.to_dict()["mae"][b] == pytest.approx(np.abs(diff).mean())
        assert whole.pixels[b] == both.sum()


def test_no_overlap_gives_none():
    assert OverlapDifferences.empty(2).to_dict() == {"rmse": [None, None], "mae": [None, None], "pixels": [0, 0]}


def two_image_statistics(xi, xj, valid):
    box = Box(0, 0, *xi.shape[1:])
    blocks = BlockGrid(4, 4, xi.shape[1] // 4, xi.shape[2] // 4)
    stats = Statistics.empty(xi.shape[0], [box, box], blocks)
    stats.add(chunk_statistics(box, {0: (xi, valid), 1: (xj, valid)}, blocks))
    return stats


def test_overlap_consistency_from_moments_equals_the_pixels():
    """The closed-form figures of a global model equal those computed on the corrected pixels."""
    rng = np.random.default_rng(1)
    truth = rng.gamma(4, 100, (2, 16, 16))
    xi, xj = truth * 1.2 + 30, truth * np.array([0.9, 1.1])[:, None, None] - 10 + rng.normal(0, 5, truth.shape)
    valid = rng.random((16, 16)) > 0.1
    stats = two_image_statistics(xi, xj, valid)
    fit = GlobalFit(np.array([[0.8, 0.9], [1.1, 1.0]]), np.array([[5.0, -2.0], [3.0, 1.0]]), [[0, 1]], [[0]], [])
    got = overlap_consistency(stats, fit)
    ci = fit.gains[0][:, None, None] * xi + fit.offsets[0][:, None, None]
    cj = fit.gains[1][:, None, None] * xj + fit.offsets[1][:, None, None]
    a, b = ci[:, valid], cj[:, valid]
    assert got.mean_diff == pytest.approx(np.abs(a.mean(axis=1) - b.mean(axis=1)))
    assert got.std_diff == pytest.approx(np.abs(a.std(axis=1) - b.std(axis=1)))
    assert got.rmse == pytest.approx(np.sqrt(((a - b) ** 2).mean(axis=1)))
    pixels = OverlapDifferences.empty(2)
    pixels.add(ci, valid, cj, valid)
    assert got.rmse == pytest.approx(pixels.to_dict()["rmse"])
    raw = overlap_consistency(stats)  # no model: the input as it is
    assert raw.rmse == pytest.approx(np.sqrt(((xi[:, valid] - xj[:, valid]) ** 2).mean(axis=1)))


def test_affine_residual_removes_one_common_affine_map():
    rng = np.random.default_rng(2)
    truth = rng.normal(500, 80, (3, 1000))
    assert affine_residual(2.5 * truth - 40, truth)[0] == pytest.approx(np.zeros(3), abs=1e-9)
    noise = rng.normal(0, 8, truth.shape)
    rmse, rel = affine_residual(truth + noise, truth)
    # regressing truth on truth + noise leaves sd_t * sd_n / sqrt(sd_t^2 + sd_n^2) = 7.96
    assert rmse == pytest.approx(np.full(3, 80 * 8 / np.hypot(80, 8)), rel=0.1)
    assert rel == pytest.approx(rmse / truth.std(axis=1))
