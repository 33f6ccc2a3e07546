import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stacrrn.core.fields import (
    PIXEL_FIELD_RTOL,
    bilinear_weights,
    evaluate_field,
    evaluate_field_on_lattice,
    field_at_pixels,
    window_field,
)
from stacrrn.core.global_model import solve_global
from stacrrn.core.local_model import LocalParams, solve_local
from stacrrn.core.metrics import overlap_consistency, reference_block_map
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box, Grid


@settings(deadline=None, max_examples=50)
@given(
    st.integers(1, 6), st.integers(1, 6), st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3), st.integers(0, 10**6)
)
def test_bilinear_reproduces_linear_fields_inside_the_nodes(h, w, c0, cr, cc, seed):
    blocks = BlockGrid(10, 10, 20, 20)
    frame = Box(2, 3, 2 + h, 3 + w)
    rr, cc_ = np.mgrid[frame.row0 : frame.row1, frame.col0 : frame.col1]
    nodes = c0 + cr * rr + cc * cc_
    rng = np.random.default_rng(seed)
    rows = (frame.row0 + 0.5 + rng.uniform(0, h - 1, 50)) * 10
    cols = (frame.col0 + 0.5 + rng.uniform(0, w - 1, 50)) * 10
    idx, wt = bilinear_weights(rows, cols, blocks, frame)
    np.testing.assert_allclose(wt.sum(axis=0), 1.0)
    expected = c0 + cr * (rows / 10 - 0.5) + cc * (cols / 10 - 0.5)
    np.testing.assert_allclose((nodes.ravel()[idx] * wt).sum(axis=0), expected, atol=1e-9)
    # outside the outer node centres the field is held at the edge value
    field = np.exp(nodes)[None]
    edge = evaluate_field(field, np.array([0.0]), np.array([0.0]), blocks, frame)
    np.testing.assert_allclose(edge, np.exp(nodes[0, 0]), rtol=1e-12)


def two_strips(gradient: float):
    rng = np.random.default_rng(0)
    h, w = 60, 160
    truth = rng.gamma(2.0, 300.0, size=(2, h, w)) + 200
    x = (np.arange(w) - 80) / 80
    boxes = [Box(0, 0, h, 100), Box(0, 60, h, w)]
    layers = {}
    for k, b in enumerate(boxes):
        valid = np.zeros((h, w), bool)
        valid[:, b.col0 : b.col1] = True
        g = 1 + gradient * x if k == 1 else np.ones(w)
        layers[k] = (truth * g[None, None, :], valid)
    grid = Grid("EPSG:32633", (1.0, 0, 0, 0, -1.0, 0), w, h)
    blocks = BlockGrid.over(grid, 10, 10)
    stats = Statistics.empty(2, boxes, blocks)
    stats.add(chunk_statistics(grid.box, layers, blocks))
    return stats


def test_identical_overlaps_give_identity_fields():
    stats = two_strips(0.0)
    fit = solve_global(stats.images, stats.pairs, [0])
    local = solve_local(stats, fit, [0])
    for f in local.fields:
        np.testing.assert_allclose(f, 1.0, atol=1e-9)
    np.testing.assert_allclose(local.shifts, 0.0, atol=1e-6)


def test_gradient_in_overlap_is_removed():
    """An image-wide gradient (strip 2 is ``1 + 0.2 x`` everywhere) with fields across whole images."""
    stats = two_strips(0.2)
    fit = solve_global(stats.images, stats.pairs, [0])
    local = solve_local(stats, fit, [0], LocalParams(extent="image"))
    before = overlap_consistency(stats, fit).block_mean_diff
    after = overlap_consistency(stats, fit, local).block_mean_diff
    assert (after < 0.2 * before).all()  # measured: 0.12
    np.testing.assert_allclose(local.fields[0], 1.0, atol=1e-3)  # the reference stays put


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 10**6))
def test_lattice_evaluation_equals_pointwise(h, w, seed):
    rng = np.random.default_rng(seed)
    blocks = BlockGrid(7, 9, 10, 10)
    frame = Box(1, 2, 1 + h, 2 + w)
    field = rng.uniform(0.8, 1.25, (2, h, w))
    rows = rng.uniform(-5, 90, 13)
    cols = rng.uniform(-5, 110, 17)
    lattice = evaluate_field_on_lattice(field, rows, cols, blocks, frame)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    pointwise = evaluate_field(field, rr.ravel(), cc.ravel(), blocks, frame).reshape(2, 13, 17)
    np.testing.assert_allclose(lattice, pointwise, rtol=1e-12)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(8, 300), st.integers(8, 300), st.integers(0, 10**6))
def test_pixel_fields_are_the_float64_fields_within_their_bound(h, w, block_h, block_w, seed):
    """Pixels get the field in float32, on a lattice and pointwise, within PIXEL_FIELD_RTOL of float64."""
    rng = np.random.default_rng(seed)
    blocks = BlockGrid(block_h, block_w, 40, 40)
    frame = Box(1, 2, 1 + h, 2 + w)
    field = np.exp(rng.uniform(np.log(0.5), np.log(2.0), (3, h, w)))  # the bound's range of gains
    rows, cols = rng.uniform(-50, 2500, 31), rng.uniform(-50, 2500, 257)
    lattice = field_at_pixels(field, rows, cols, blocks, frame)
    assert lattice.dtype == np.float32 and lattice.shape == (3, 31, 257)
    np.testing.assert_allclose(
        lattice, evaluate_field_on_lattice(field, rows, cols, blocks, frame), rtol=PIXEL_FIELD_RTOL
    )
    rr, cc = np.meshgrid(rows[:9], cols[:11], indexing="ij")
    pointwise = field_at_pixels(field, rr, cc, blocks, frame)
    exact = evaluate_field(field, rr.ravel(), cc.ravel(), blocks, frame).reshape(3, 9, 11)
    assert pointwise.dtype == np.float32
    np.testing.assert_allclose(pointwise, exact, rtol=PIXEL_FIELD_RTOL)
    # strip by strip (pass 2): each strip of the window within the same bound, whatever the cut
    whole = evaluate_field_on_lattice(field, rows, cols, blocks, frame)
    for at, reference in (((rows, cols), whole), ((rr, cc), exact)):
        strip_of = window_field(field, *at, blocks, frame)
        n = at[0].shape[0]
        cuts = sorted({0, n, *rng.integers(0, n, 3).tolist()})
        strips = [strip_of(slice(a, b)) for a, b in itertools.pairwise(cuts)]
        assert all(s.dtype == np.float32 for s in strips)
        np.testing.assert_allclose(np.concatenate(strips, axis=1), reference, rtol=PIXEL_FIELD_RTOL)


def test_reference_block_map_of_consistent_images_is_their_block_mean():
    stats = two_strips(0.0)
    fit = solve_global(stats.images, stats.pairs, [0])
    ref = reference_block_map(stats, fit, solve_local(stats, fit, [0]))
    # identical overlaps: the map is the block mean of the mosaic of both strips
    assert ref.shape == (2, stats.blocks.n_rows, stats.blocks.n_cols)
    bs = stats.image_blocks[0]
    np.testing.assert_allclose(ref[:, :, :2], (bs.sums / bs.n)[:, :, :2], rtol=1e-9)


def test_normal_equations_by_cg_match_lu_on_a_coupled_lattice():
    """Fields of 12 images on a 16 x 16 block grid, chained image to image: a 3-D lattice."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from stacrrn.core.sparse_solve import coarse_space, solve_normal_equations

    side, images = 16, 12
    grid = sp.kron(sp.eye(side), sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], (side, side))) + sp.kron(
        sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], (side, side)), sp.eye(side)
    )
    chain = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], (images, images)).tolil()
    chain[0, 0] += 1000.0  # a reference image held in place
    normal = (
        sp.kron(sp.eye(images), grid @ grid + 0.01 * sp.eye(side * side)) + sp.kron(chain, sp.eye(side**2))
    ).tocsr()
    rhs = np.random.default_rng(0).normal(size=normal.shape[0])
    expected = spla.spsolve(normal.tocsc(), rhs)
    frames = [Box(0, 0, side, side)] * images
    # the solver stops at a relative residual of 1e-8, so |x - x*| <= 1e-8 |rhs| / lambda_min(normal)
    lambda_min = float(spla.eigsh(normal, k=1, sigma=0, which="LM", return_eigenvectors=False)[0])
    bound = 1e-8 * np.linalg.norm(rhs) / lambda_min
    for coarse in (None, coarse_space(frames, 0)):
        x = solve_normal_equations(normal, rhs, coarse)
        assert np.linalg.norm(normal @ x - rhs) <= 1e-8 * np.linalg.norm(rhs)
        assert np.linalg.norm(x - expected) <= bound


def test_coarse_space_interpolates_linear_fields_exactly():
    from stacrrn.core.sparse_solve import coarse_space

    frames = [Box(0, 0, 7, 10), Box(3, 2, 4, 3)]  # 7 x 10 and 1 x 1 blocks
    p = coarse_space(frames, 2, step=4).toarray()
    assert np.allclose(p.sum(axis=1), 1.0)  # a partition of unity: constants are in the coarse space
    rows, cols = np.mgrid[0:7, 0:10]
    linear = (2.0 * rows + 0.5 * cols).ravel()
    coefs, *_ = np.linalg.lstsq(p[:70, : p.shape[1] - 3], linear, rcond=None)
    assert np.allclose(p[:70, : p.shape[1] - 3] @ coefs, linear)
