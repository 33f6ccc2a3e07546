import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stacrrn.core.global_model import flat_bands, solve_global
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box, Grid


def strip_mosaic(truth: np.ndarray, n: int, overlap: int, gains, offsets):
    """Cut ``truth`` (bands, h, w) into ``n`` horizontal overlapping strips, distorted; return stats."""
    bands, h, w = truth.shape
    step = (w - overlap) // n
    boxes = [Box(0, k * step, h, min(w, k * step + step + overlap)) for k in range(n)]
    layers = {}
    for k, b in enumerate(boxes):
        valid = np.zeros((h, w), bool)
        valid[b.row0 : b.row1, b.col0 : b.col1] = True
        layers[k] = (truth * gains[k][:, None, None] + offsets[k][:, None, None], valid)
    grid = Grid("EPSG:32633", (1.0, 0, 0, 0, -1.0, 0), w, h)
    blocks = BlockGrid.over(grid, 16, 16)
    stats = Statistics.empty(bands, boxes, blocks)
    stats.add(chunk_statistics(grid.box, layers, blocks))
    return stats


def texture(seed, bands=3, h=40, w=200):
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 300.0, size=(bands, h, w)) + 500


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_affine_distortions_are_recovered_exactly_with_a_reference(seed, n):
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.6, 1.6, (n, 3))
    offsets = rng.uniform(-300, 300, (n, 3))
    gains[0], offsets[0] = 1, 0
    stats = strip_mosaic(texture(seed), n, 30, gains, offsets)
    fit = solve_global(stats.images, stats.pairs, references=[0])
    np.testing.assert_allclose(fit.gains * gains, 1.0, rtol=1e-6)
    np.testing.assert_allclose(fit.gains * offsets + fit.offsets, 0.0, atol=1e-3)


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 10_000))
def test_normalizing_identical_images_is_the_identity(seed):
    stats = strip_mosaic(texture(seed), 4, 30, np.ones((4, 3)), np.zeros((4, 3)))
    fit = solve_global(stats.images, stats.pairs)
    np.testing.assert_allclose(fit.gains, 1.0, atol=1e-9)
    np.testing.assert_allclose(fit.offsets, 0.0, atol=1e-3)


def test_no_contrast_collapse_without_references():
    """All-images anchoring keeps the mean gain: no shrinking of every gain."""
    rng = np.random.default_rng(3)
    gains = rng.uniform(0.7, 1.3, (5, 3))
    offsets = rng.uniform(-200, 200, (5, 3))
    stats = strip_mosaic(texture(3), 5, 30, gains, offsets)
    fit = solve_global(stats.images, stats.pairs)
    # relative normalization: every corrected image equals one common affine map of the truth
    common = fit.gains * gains
    np.testing.assert_allclose(common / common[0], 1.0, rtol=1e-6)
    # the central tendency of the spreads is preserved, so gains cannot collapse
    sd = np.array([m.std for m in stats.images])
    np.testing.assert_allclose((fit.gains * sd).sum(0), sd.sum(0), rtol=1e-9)
    assert fit.gains.min() > 0.6


def test_disconnected_components_each_get_an_anchor_and_isolated_images_identity():
    truth = texture(5, h=40, w=300)
    gains = np.array([[1.0] * 3, [1.2] * 3, [0.8] * 3])
    stats = strip_mosaic(truth, 3, 30, gains, np.zeros((3, 3)))
    # cut the link between images 1 and 2
    stats.pairs.pop((1, 2))
    fit = solve_global(stats.images, stats.pairs, references=[0])
    assert fit.components == [[0, 1], [2]]
    assert fit.isolated == [2]
    assert fit.anchors == [[0], [2]]
    np.testing.assert_allclose(fit.gains[1] * 1.2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(fit.gains[2], 1.0)
    np.testing.assert_allclose(fit.offsets[2], 0.0, atol=1e-9)


def test_excluded_images_are_still_corrected_through_overlaps():
    rng = np.random.default_rng(9)
    gains = rng.uniform(0.8, 1.2, (4, 3))
    offsets = rng.uniform(-100, 100, (4, 3))
    gains[[1, 2]], offsets[[1, 2]] = 1, 0
    stats = strip_mosaic(texture(9), 4, 30, gains, offsets)
    fit = solve_global(stats.images, stats.pairs, references=[1, 2])
    np.testing.assert_allclose(fit.gains * gains, 1.0, rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_unit_agnostic(scale):
    gains = np.array([[1.0] * 3, [1.1] * 3, [0.9] * 3])
    offsets = np.array([[0.0] * 3, [-0.05] * 3, [0.03] * 3]) * 1000 * scale
    truth = texture(2) * scale - 700 * scale  # negative values included
    stats = strip_mosaic(truth, 3, 30, gains, offsets)
    fit = solve_global(stats.images, stats.pairs, references=[0])
    np.testing.assert_allclose(fit.gains * gains, 1.0, rtol=1e-7)


def band_slice(stats, keep):
    """Moments of ``stats`` restricted to the bands ``keep``."""
    from stacrrn.core.moments import ImageMoments, PairMoments

    images = [ImageMoments(m.n, m.mean[keep], m.m2[keep]) for m in stats.images]
    pairs = {
        k: PairMoments(pm.n, pm.mean_i[keep], pm.mean_j[keep], pm.m2_i[keep], pm.m2_j[keep], pm.c_ij[keep])
        for k, pm in stats.pairs.items()
    }
    return images, pairs


@pytest.mark.parametrize("references", [[0], None])
def test_a_band_constant_in_every_overlap_is_left_at_identity_and_the_others_are_solved_as_without_it(references):
    """An empty probability layer: each image holds one (integer) value, so every M2 is exactly 0."""
    rng = np.random.default_rng(11)
    truth = texture(11, bands=3)
    truth[1] = 1000.0
    gains = rng.uniform(0.7, 1.3, (4, 3))
    offsets = rng.uniform(-200, 200, (4, 3))
    gains[0], offsets[0] = 1, 0
    gains[:, 1], offsets[:, 1] = 1, [0, 50, -30, 20]
    stats = strip_mosaic(truth, 4, 30, gains, offsets)
    assert all(pm.m2_i[1] == 0 and pm.m2_j[1] == 0 for pm in stats.pairs.values())
    assert len({float(m.mean[1]) for m in stats.images}) == 4  # the images differ there: not the identity by luck
    assert flat_bands(stats.pairs, 64, 3) == [1]
    fit = solve_global(stats.images, stats.pairs, references=references)
    assert fit.unfitted == [1]
    np.testing.assert_array_equal(fit.gains[:, 1], 1.0)
    np.testing.assert_array_equal(fit.offsets[:, 1], 0.0)
    images, pairs = band_slice(stats, [0, 2])
    alone = solve_global(images, pairs, references=references)
    assert alone.unfitted == []
    np.testing.assert_allclose(fit.gains[:, [0, 2]], alone.gains, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fit.offsets[:, [0, 2]], alone.offsets, rtol=0, atol=1e-9)
    if references == [0]:
        np.testing.assert_allclose(fit.gains[:, [0, 2]] * gains[:, [0, 2]], 1.0, rtol=1e-6)


def test_a_band_flat_in_one_image_of_each_overlap_is_unfitted():
    """Image 1 of three strips is constant in band 0: neither of its overlaps relates spreads there."""
    stats = strip_mosaic(texture(4), 3, 30, np.ones((3, 3)), np.zeros((3, 3)))
    stats.images[1].m2[0] = 0.0
    stats.pairs[(0, 1)].m2_j[0] = stats.pairs[(0, 1)].c_ij[0] = 0.0
    stats.pairs[(1, 2)].m2_i[0] = stats.pairs[(1, 2)].c_ij[0] = 0.0
    assert flat_bands(stats.pairs, 64, 3) == [0]
    fit = solve_global(stats.images, stats.pairs)
    assert fit.unfitted == [0]
    np.testing.assert_array_equal(fit.gains[:, 0], 1.0)
    np.testing.assert_allclose(fit.gains[:, 1:], 1.0, atol=1e-9)


@pytest.mark.parametrize("estimator", ["spread", "orthogonal"])
def test_a_pair_flat_on_one_side_is_dropped_without_pulling_gains_to_zero(estimator):
    """Four strips that all overlap; the (1, 2) overlap is constant in image 2 in band 0 (a masked patch).

    Its spread row ``a_1 sigma_12 = a_2 * 0`` would ask for ``a_1 = 0``; the other overlaps still
    determine band 0, so dropping that row recovers the distortions exactly.
    """
    rng = np.random.default_rng(21)
    gains = rng.uniform(0.7, 1.3, (4, 3))
    offsets = rng.uniform(-200, 200, (4, 3))
    gains[0], offsets[0] = 1, 0
    stats = strip_mosaic(texture(21), 4, 120, gains, offsets)
    assert sorted(stats.pairs) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    flat = stats.pairs[(1, 2)]
    flat.m2_j[0] = flat.c_ij[0] = 0.0
    assert flat_bands(stats.pairs, 64, 3) == []
    fit = solve_global(stats.images, stats.pairs, references=[0], estimator=estimator)
    assert fit.unfitted == []
    assert np.all(np.isfinite(fit.gains)) and np.all(np.isfinite(fit.offsets))
    np.testing.assert_allclose(fit.gains * gains, 1.0, rtol=1e-6)
    np.testing.assert_allclose(fit.gains * offsets + fit.offsets, 0.0, atol=1e-3)
