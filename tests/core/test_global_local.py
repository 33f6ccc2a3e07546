"""Alternating global and local solves: how far a round moves the fit, and when rounds stop."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import stacrrn.core.global_local as global_local
from stacrrn.core.global_model import GlobalFit, solve_global
from stacrrn.core.local_model import LocalProblem, evidence_nodes, unsupported_nodes
from stacrrn.core.metrics import overlap_consistency
from stacrrn.core.moments import ImageMoments
from stacrrn.core.settings import LocalParams
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
    solve_all = LocalProblem.solve_all
    monkeypatch.setattr(LocalProblem, "solve_all", lambda *a, **k: calls.append(1) or solve_all(*a, **k))
    stats = two_strips(gradient)
    image_wide = LocalParams(extent="image", cross_validate=False)
    fit = global_local.solve_global_local(stats, [0], params=image_wide, rounds=4)
    assert len(calls) == local_solves
    if gradient:  # the alternation took the gradient's bias out of the gain: strip 2 is 1 + 0.2 x there
        before = overlap_consistency(stats, solve_global(stats.images, stats.pairs, [0]))
        after = overlap_consistency(stats, fit.global_fit, fit.local_fit)
        assert (after.block_mean_diff < 0.2 * before.block_mean_diff).all()


def test_default_fields_live_near_the_overlap_and_leave_the_global_model_alone():
    """extent="overlaps": global gains and offsets are the global step's; fields are exactly 1 far away."""
    stats = two_strips(0.2)
    fit = global_local.solve_global_local(stats, [0])
    global_only = solve_global(stats.images, stats.pairs, [0])
    np.testing.assert_array_equal(fit.global_fit.gains, global_only.gains)
    np.testing.assert_array_equal(fit.global_fit.offsets, global_only.offsets)
    np.testing.assert_array_equal(fit.local_fit.shifts, 0.0)
    assert fit.validation.kept[1].all()  # a real gradient: the held-out blocks are better predicted
    frames = fit.local_fit.frames
    for i, (field, evidence) in enumerate(zip(fit.local_fit.fields, evidence_nodes(stats, frames, 0.05), strict=True)):
        far = unsupported_nodes(evidence, 2.0)
        assert far.any() and (~far).any()
        np.testing.assert_array_equal(field[:, far], 1.0)  # no evidence within 2 blocks: exactly the global model
        if i == 1:  # the strip with the gradient is corrected where the overlap says so
            assert np.abs(field[:, ~far] - 1).max() > 0.02
    before = overlap_consistency(stats, global_only)
    after = overlap_consistency(stats, fit.global_fit, fit.local_fit)
    assert (after.block_mean_diff < 0.5 * before.block_mean_diff).all()


def test_unsupported_nodes_are_those_at_decay_blocks_or_more_from_evidence():
    evidence = np.zeros((5, 7), bool)
    evidence[:, :2] = True  # an overlap along the left edge
    far = unsupported_nodes(evidence, 2.0)
    np.testing.assert_array_equal(far[0], [False, False, False, True, True, True, True])
    np.testing.assert_array_equal(unsupported_nodes(np.zeros((2, 2), bool), 2.0), True)  # no evidence at all


def test_without_reference_image_extent_keeps_the_global_gauge():
    """No drift of the anchors' corrected mean and spread through the alternation."""
    stats = two_strips(0.2)
    fit = global_local.solve_global_local(stats, None, params=LocalParams(extent="image"))
    images = global_local.compensated_images(stats, fit.local_fit)
    g, o = fit.global_fit.gains, fit.global_fit.offsets
    mean_after = np.mean([g[k] * images[k].mean + o[k] for k in (0, 1)], axis=0)
    std_after = np.mean([np.abs(g[k]) * images[k].std for k in (0, 1)], axis=0)
    np.testing.assert_allclose(mean_after, np.mean([m.mean for m in stats.images], axis=0), rtol=1e-12)
    np.testing.assert_allclose(std_after, np.mean([m.std for m in stats.images], axis=0), rtol=1e-12)
