"""Alternating global and local solves: how far a round moves the fit, and when rounds stop."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import stacrrn.core.global_local as global_local
from stacrrn.core.global_model import GlobalFit
from stacrrn.core.moments import ImageMoments
from tests.core.test_local_model import two_strips


def fit(gains, offsets):
    return GlobalFit(np.array(gains, float), np.array(offsets, float), [[0, 1]], [[0]], [])


def test_global_change_is_the_largest_move_of_a_corrected_mean_or_spread_over_the_band_scale():
    images = [
        ImageMoments(100, np.array([100.0]), np.array([100 * 10.0**2])),
        ImageMoments(100, np.array([200.0]), np.array([100 * 20.0**2])),
    ]
    stats = SimpleNamespace(images=images)
    a = fit([[1.0], [1.0]], [[0.0], [0.0]])
    b = fit([[1.0], [1.01]], [[0.0], [-1.0]])  # image 2: mean moves 0.01 * 200 - 1 = 1, spread 0.2
    scale = np.sqrt((100**2 + 10**2 + 200**2 + 20**2) / 2)
    assert global_local.global_change(stats, a, a) == 0.0
    assert global_local.global_change(stats, a, b) == pytest.approx(1.0 / scale, rel=1e-12)


@pytest.mark.parametrize(("gradient", "local_solves"), [(0.0, 1), (0.2, 4)])
def test_rounds_stop_at_a_fixed_point_and_go_on_while_gradients_bias_the_global_step(
    monkeypatch, gradient, local_solves
):
    calls = []
    solve_local = global_local.solve_local
    monkeypatch.setattr(global_local, "solve_local", lambda *a, **k: calls.append(1) or solve_local(*a, **k))
    stats = two_strips(gradient)
    gfit, local = global_local.solve_global_local(stats, [0], rounds=4)
    assert len(calls) == local_solves
    if gradient:  # the alternation took the gradient's bias out of the gain: strip 2 is 1 + 0.2 x there
        before = global_local.overlap_consistency(stats, global_local.solve_global(stats.images, stats.pairs, [0]))
        after = global_local.overlap_consistency(stats, gfit, local)
        assert (after.block_mean_diff < 0.2 * before.block_mean_diff).all()
