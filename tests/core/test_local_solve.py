"""The local step's solver: CG to an error tolerance, reused coarse factorizations, Gauss-Newton's stopping rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.ndimage import gaussian_filter

import stacrrn.core.local_model as local_model
from stacrrn.core.global_model import solve_global
from stacrrn.core.local_model import BlockDesign, LocalProblem, StackedBlocks
from stacrrn.core.settings import LocalParams
from stacrrn.core.sparse_solve import (
    RESIDUAL_GUARD,
    RTOL,
    CoarseSolver,
    ErrorTolerance,
    coarse_space,
    conjugate_gradients,
    jacobi,
    solve_normal_equations,
)
from stacrrn.core.statistics import Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box, Grid
from tests.core.test_local_model import two_strips


def lattice(side: int = 16, images: int = 12, data: float = 1.0) -> sp.csr_matrix:
    """Fields of ``images`` images on a ``side`` x ``side`` block grid, chained image to image (a 3-D lattice)."""
    line = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], (side, side))
    grid = sp.kron(sp.eye(side), line) + sp.kron(line, sp.eye(side))
    chain = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], (images, images)).tolil()
    chain[0, 0] += 1000.0  # a reference image held in place
    smooth = sp.kron(sp.eye(images), grid @ grid + 0.01 * sp.eye(side * side))
    return sp.csr_matrix(smooth + data * sp.kron(chain, sp.eye(side**2)))


def lattice_coarse(side: int = 16, images: int = 12) -> sp.csr_matrix:
    return coarse_space([Box(0, 0, side, side)] * images, 0)


def test_error_tolerance_is_relative_to_the_solution_between_its_floor_and_ceiling():
    tolerance = ErrorTolerance(1e-6, relative=0.1, ceiling=1e-3)
    assert tolerance(0.0) == 1e-6
    assert tolerance(1e-3) == pytest.approx(1e-4)
    assert tolerance(1.0) == 1e-3
    assert ErrorTolerance(1e-6)(1.0) == 1e-6


@pytest.mark.parametrize("fraction", [1e-2, 1e-4])
def test_cg_to_an_error_tolerance_is_that_close_to_the_exact_solution_in_fewer_iterations(fraction):
    normal = lattice()
    rhs = np.random.default_rng(0).normal(size=normal.shape[0])
    exact = spla.spsolve(normal.tocsc(), rhs)
    solver = CoarseSolver.of(normal, lattice_coarse())
    tight = conjugate_gradients(normal, rhs, jacobi(normal), solver)
    tolerance = ErrorTolerance(fraction * np.abs(exact).max())
    loose = conjugate_gradients(normal, rhs, jacobi(normal), solver, tolerance)
    assert loose.converged and tight.converged
    # the tolerance is the error aimed at, in the units of x (largest component)
    assert np.abs(loose.x - exact).max() <= tolerance(np.abs(loose.x).max())
    assert loose.iterations < tight.iterations


def test_an_iterate_that_barely_moves_is_not_accepted_before_the_residual_guard():
    """A tolerance far above the solution's size: only the residual condition keeps CG going."""
    normal = lattice()
    rhs = np.random.default_rng(1).normal(size=normal.shape[0])
    result = conjugate_gradients(normal, rhs, jacobi(normal), None, ErrorTolerance(1e6))
    assert np.linalg.norm(rhs - normal @ result.x) <= RESIDUAL_GUARD * np.linalg.norm(rhs)


def test_a_coarse_factorization_of_a_nearby_matrix_still_gives_the_exact_solution():
    """The coarse solve of one Gauss-Newton step preconditions the next, whose weights moved."""
    before, after = lattice(data=1.0), lattice(data=1.5)
    stale = CoarseSolver.of(before, lattice_coarse())
    rhs = np.random.default_rng(2).normal(size=after.shape[0])
    x = solve_normal_equations(after, rhs, stale)
    assert np.linalg.norm(after @ x - rhs) <= RTOL * np.linalg.norm(rhs)
    # the relative residual bounds the error through the smallest eigenvalue
    lambda_min = float(spla.eigsh(after, k=1, sigma=0, which="LM", return_eigenvectors=False)[0])
    exact = spla.spsolve(after.tocsc(), rhs)
    assert np.linalg.norm(x - exact) <= RTOL * np.linalg.norm(rhs) / lambda_min


def dated_series(dates: int = 6, size: int = 192, block: int = 16, seed: int = 0) -> Statistics:
    """A time series with a smooth multiplicative field per date and a patch of real change in each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    truth = gaussian_filter(rng.gamma(3.0, 400.0, (2, size, size)), (0, 2, 2)) + 300
    grid = Grid("EPSG:32633", (1.0, 0, 0, 0, -1.0, 0), size, size)
    stats = Statistics.empty(2, [grid.box] * dates, BlockGrid.over(grid, block, block))
    layers = {}
    for d in range(dates):
        a, b, c = rng.normal(0, 0.06, 3) if d else (0.0, 0.0, 0.0)
        field = np.exp(a * xx + b * yy + c * (xx**2 + yy**2))
        values = truth * field * rng.uniform(0.9, 1.1, (2, 1, 1)) + rng.normal(0, 5, truth.shape)
        r0, c0 = rng.integers(0, size - 2 * block, 2)
        values[:, r0 : r0 + 2 * block, c0 : c0 + 2 * block] *= 1.3  # a new field
        layers[d] = (values, np.ones((size, size), bool))
    pairs = {(i, j) for i in range(dates) for j in range(i + 1, min(i + 3, dates))}
    stats.add(chunk_statistics(grid.box, layers, stats.blocks, pairs=pairs))
    return stats


@pytest.mark.parametrize("extent", ["overlaps", "image"])
def test_the_normal_operator_is_the_normal_matrix_of_its_rows(extent):
    """Applied through the blocks' design, formed, on the coarse space and on its diagonal: the same matrix."""
    stats = dated_series(dates=4, size=96)
    fit = solve_global(stats.images, stats.pairs, [0])
    problem = LocalProblem.build(stats, fit, [0], LocalParams(extent=extent))
    layout = problem.layout([2])  # shifts free with extent="image", one image's field held
    blocks = StackedBlocks.of(problem.band(1).overlaps)
    design = BlockDesign.of(blocks, problem.n_fields, layout.free)
    rng = np.random.default_rng(3)
    x = np.zeros(layout.free.size)
    x[layout.free] = rng.normal(0, 0.02, layout.free.sum())
    normal, _ = local_model._linearize(x, blocks, design, layout.gram, problem.n_fields, 500.0, 50.0, (1.345, True))
    rows = normal.rows()
    formed = rows.T @ rows + layout.gram
    v = rng.normal(size=normal.shape[0])
    scale = np.abs(formed @ v).max()
    np.testing.assert_allclose(normal @ v, formed @ v, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(normal.diagonal(), formed.diagonal(), rtol=1e-12)
    coarse = normal.coarse_matrix(layout.coarse, layout.coarse_gram)
    expected = layout.coarse.T @ formed @ layout.coarse
    assert abs(coarse - expected).max() <= 1e-12 * abs(expected).max()
    assert (design.shift_i is None) == (extent == "overlaps")


def count_steps(monkeypatch) -> list[int]:
    """Record one entry per Gauss-Newton step (each linearizes the rows once)."""
    steps: list[int] = []
    linearize = local_model._linearize
    monkeypatch.setattr(local_model, "_linearize", lambda *a, **k: steps.append(1) or linearize(*a, **k))
    return steps


@pytest.mark.parametrize(("extent", "expected"), [("image", 1), ("overlaps", 2)])
def test_gauss_newton_stops_at_once_on_a_problem_at_its_optimum(monkeypatch, extent, expected):
    """Identical overlaps: the first step is below the tolerance. With robust fields bounded to the
    overlaps, one biweight step follows (the Huber start is reached), not two more Huber steps."""
    steps = count_steps(monkeypatch)
    stats = two_strips(0.0)
    fit = solve_global(stats.images, stats.pairs, [0])
    problem = LocalProblem.build(stats, fit, [0], LocalParams(extent=extent, cross_validate=False))
    x = problem.solve(0, problem.band(0))
    assert len(steps) == expected
    assert np.abs(x).max() < local_model.STEP_TOLERANCE


def test_fields_all_held_at_identity_are_not_solved_for(monkeypatch):
    steps = count_steps(monkeypatch)
    stats = two_strips(0.2)
    fit = solve_global(stats.images, stats.pairs, [0])
    problem = LocalProblem.build(stats, fit, [0], LocalParams())
    x = problem.solve(0, problem.band(0), identity=[0, 1])
    assert not steps
    np.testing.assert_array_equal(x, 0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_inexact_steps_move_the_result_by_at_most_the_path_tolerance(monkeypatch, seed):
    """Against every step solved to a relative residual of 1e-8, on a series whose changed patches keep
    the biweight from settling: the result is the last iterate of the path, where every step's error counts."""
    stats = dated_series(seed=seed)
    fit = solve_global(stats.images, stats.pairs, [0])
    params = LocalParams()

    def solve_bands() -> np.ndarray:
        problem = LocalProblem.build(stats, fit, [0], params)
        return np.array([problem.solve(b, problem.band(b)) for b in range(stats.n_bands)])

    steps = count_steps(monkeypatch)
    inexact = solve_bands()
    assert len(steps) == params.iterations * stats.n_bands  # Gauss-Newton ran to its iteration cap
    monkeypatch.setattr(local_model, "ErrorTolerance", lambda *args: None)
    tight = solve_bands()
    assert np.abs(inexact - tight).max() <= local_model.PATH_TOLERANCE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coarse_space_is_the_block_diagonal_of_the_fields_bilinear_prolongations(seed):
    """Each frame's field interpolated from nodes every ``COARSE_STEP`` blocks, then the extra unknowns as they are.

    The same stored matrix as ``block_diag`` of one Kronecker product per frame (its explicit
    zeros included, so products with it sum the same terms).
    """
    from stacrrn.core.sparse_solve import COARSE_STEP, _hat

    rng = np.random.default_rng(seed)
    shapes = [(1, 1), (1, 9), (COARSE_STEP + 1, 2 * COARSE_STEP)] + rng.integers(1, 40, (30, 2)).tolist() * 2
    corners = rng.integers(0, 5, (len(shapes), 2)).tolist()
    frames = [Box(r0, c0, r0 + h, c0 + w) for (h, w), (r0, c0) in zip(shapes, corners, strict=True)]
    n_extra = 2 * len(frames)
    expected = sp.block_diag(
        [*(sp.kron(_hat(f.height, COARSE_STEP), _hat(f.width, COARSE_STEP)) for f in frames), sp.eye(n_extra)],
        format="csr",
    )
    got = coarse_space(frames, n_extra)
    assert got.shape == expected.shape == (sum(f.height * f.width for f in frames) + n_extra, got.shape[1])
    for part in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got, part), getattr(expected, part))
    fields = got[: got.shape[0] - n_extra, : got.shape[1] - n_extra]
    np.testing.assert_allclose(fields.sum(axis=1), 1.0)  # interpolation weights of every block sum to one
