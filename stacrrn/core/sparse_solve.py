"""Sparse normal equations of the local step: conjugate gradients with a two-level preconditioner."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from stacrrn.types import Box

F64 = NDArray[np.float64]


COARSE_STEP = 8
"""Spacing, in blocks, of the coarse nodes of the local solve's two-level preconditioner.

Solved to the local step's tolerances (not to a relative residual of 1e-8), the 50-date
series took 15 CG iterations per step with nodes every 8 blocks against 11 every 4 blocks,
but each iteration's coarse solve cost a third and the factorization a sixth: the local
solve as a whole took 30 % less CPU (and the same with nodes every 6 blocks, more with 12).
"""

RTOL = 1e-8
"""Relative residual at which conjugate gradients stop when no error tolerance is given."""

DELAY = 5
"""Iterations over which conjugate gradients measure how far the iterate still moves.

CG converges about linearly: when the iterate moved by ``m1`` over the last ``DELAY``
iterations and by ``m0`` over the ``DELAY`` before, the ratio ``q = m1 / m0`` estimates the
contraction over ``DELAY`` iterations and the remaining error is about the geometric tail
``m1 q / (1 - q)``; the error estimate is that, and never less than ``m1``. On the 50-date local
solves the error left when ``m1`` alone fell below a tolerance was 0.2-0.3 of it (1.4-2.5 with
a delay of one iteration), but 0.98 on a slowly converging lattice (``q`` near 0.7), where
the tail term takes over.
"""

RESIDUAL_GUARD = 0.1
"""Relative residual an iterate must also reach before its error estimate is trusted.

It keeps a stagnating iteration, which moves little while still far from the solution, from
stopping early; it is the inexact Newton condition ``|r| <= eta |rhs|`` with ``eta = 0.1``.
"""


def _hat(n: int, step: int) -> sp.csr_matrix:
    """Linear interpolation ``(n, nodes)`` from nodes every ``step`` points (and the last) to ``n`` points."""
    nodes = np.unique(np.r_[np.arange(0, max(n - 1, 1), step), n - 1])
    if nodes.size == 1:
        return sp.csr_matrix(np.ones((n, 1)))
    pos = np.arange(n)
    k = np.clip(np.searchsorted(nodes, pos, side="right") - 1, 0, nodes.size - 2)
    t = (pos - nodes[k]) / (nodes[k + 1] - nodes[k])
    rows, cols = np.r_[pos, pos], np.r_[k, k + 1]
    return sp.csr_matrix((np.r_[1 - t, t], (rows, cols)), shape=(n, nodes.size))


@functools.lru_cache(maxsize=64)
def _field_prolongation(height: int, width: int, step: int) -> sp.coo_matrix:
    """One field's bilinear prolongation ``(height * width, nodes)`` (shared by frames of one shape)."""
    return sp.kron(_hat(height, step), _hat(width, step)).tocoo()  # as stored: a BSR product keeps its zeros


def coarse_space(frames: Sequence[Box], n_extra: int, step: int = COARSE_STEP) -> sp.csr_matrix:
    """Prolongation from coarse unknowns to all unknowns: each field bilinear on nodes every ``step`` blocks.

    The ``n_extra`` trailing unknowns (shifts, mean log-gains) are coarse unknowns themselves.
    The fields' blocks go on the diagonal in one COO build (1024 frames of 8 x 8 blocks: 0.35-0.68 -> 0.017 s against
    ``scipy.sparse.block_diag`` of one Kronecker product per frame); the same matrix.
    """
    parts = [_field_prolongation(f.height, f.width, step) for f in frames]
    extra = sp.eye(n_extra, format="coo")
    rows0 = np.cumsum([0] + [p.shape[0] for p in parts])
    cols0 = np.cumsum([0] + [p.shape[1] for p in parts])
    blocks = [*zip(parts, rows0, cols0, strict=False), (extra, rows0[-1], cols0[-1])]
    rows = np.concatenate([p.row + r for p, r, _ in blocks])
    cols = np.concatenate([p.col + c for p, _, c in blocks])
    data = np.concatenate([p.data for p, _, _ in blocks])
    shape = (int(rows0[-1]) + n_extra, int(cols0[-1]) + n_extra)
    return sp.coo_matrix((data, (rows, cols)), shape=shape).tocsr()


class NormalOperator(Protocol):
    """A normal matrix applied without being formed (formed only for the coarse space and the LU fallback)."""

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the matrix."""

    def __matmul__(self, v: F64) -> F64:
        """The matrix times ``v``."""

    def diagonal(self) -> F64:
        """The matrix's diagonal."""

    def tocsr(self) -> sp.csr_matrix:
        """The matrix, formed."""


Normal: TypeAlias = sp.csr_matrix | NormalOperator
"""A symmetric positive (semi)definite normal matrix, formed or as a :class:`NormalOperator`."""


@dataclass(frozen=True)
class CoarseSolver:
    """The exact coarse solve of the two-level preconditioner: ``P (P^T N P)^-1 P^T``.

    Factorizing the coarse matrix costs as much as a dozen CG iterations; a factorization of
    a nearby matrix (the previous Gauss-Newton step's, whose robust weights moved a little)
    serves as well as a fresh one: the preconditioner only has to stay fixed within one CG
    run, not equal the matrix (on the 50-date local solves, reusing the first Gauss-Newton
    step's for the others changed no iteration count). Another subset of the blocks is not
    nearby: the other fold of a cross-validation over 1024 small scenes lacks whole couplings,
    and CG took thousands of iterations with its factorization.
    """

    prolongation: sp.csr_matrix
    restriction: sp.csr_matrix
    lu: spla.SuperLU

    @classmethod
    def factorize(cls, matrix: sp.csr_matrix, prolongation: sp.csr_matrix) -> CoarseSolver | None:
        """Factorize the coarse ``matrix`` (``P^T N P``); ``None`` if singular (Jacobi alone still converges)."""
        try:
            # COLAMD (the default): minimum degree on A^T + A filled 8x more where shifts couple whole images
            lu = spla.splu(sp.csc_matrix(matrix))
        except RuntimeError:
            return None
        return cls(prolongation, prolongation.T.tocsr(), lu)

    @classmethod
    def of(cls, normal: sp.csr_matrix, prolongation: sp.csr_matrix) -> CoarseSolver | None:
        """The coarse solve of a formed ``normal`` matrix on the coarse space ``prolongation``."""
        return cls.factorize(prolongation.T @ normal @ prolongation, prolongation)

    def __call__(self, v: F64) -> F64:
        """The coarse correction of the residual ``v``."""
        return np.asarray(self.prolongation @ self.lu.solve(self.restriction @ v), dtype=np.float64)


@dataclass(frozen=True)
class ErrorTolerance:
    """Error to aim at in the solution ``x`` of one solve: ``max(floor, min(relative * max|x|, ceiling))``.

    In the units of ``x`` and its largest component (log-gains for the local step). The
    relative part makes a Gauss-Newton step as accurate as a fraction of itself (the forcing
    term of an inexact Newton method), the ceiling bounds what it may add to the whole
    path of steps, and the floor is where more accuracy is meaningless.
    """

    floor: float
    relative: float = 0.0
    ceiling: float = math.inf

    def __call__(self, size: float) -> float:
        """The error allowed in a solution whose largest component is ``size``."""
        return max(self.floor, min(self.relative * size, self.ceiling))


@dataclass(frozen=True)
class CGResult:
    """Outcome of :func:`conjugate_gradients`."""

    x: F64
    iterations: int
    converged: bool


def conjugate_gradients(
    normal: Normal,
    rhs: F64,
    inv_diag: F64,
    coarse: CoarseSolver | None = None,
    tolerance: ErrorTolerance | None = None,
    maxiter: int | None = None,
) -> CGResult:
    """Preconditioned conjugate gradients on ``normal @ x = rhs`` from ``x = 0``.

    The preconditioner is Jacobi (``inv_diag``) plus the ``coarse`` solve: two-level additive.
    Stops at a relative residual of :data:`RTOL` or, with a ``tolerance``, as soon as the
    error estimated from how the iterate still moves (see :data:`DELAY`; largest component)
    is at most ``tolerance(max|x|)`` and the relative residual at most :data:`RESIDUAL_GUARD`:
    an error bound in the units of ``x``, which a relative residual is not (how one maps to
    the other depends on the conditioning).
    """
    x = np.zeros_like(rhs)
    r = rhs.copy()
    norm = float(np.linalg.norm(rhs))
    if norm == 0:
        return CGResult(x, 0, True)
    history: deque[F64] = deque([x.copy()], maxlen=2 * DELAY + 1)
    limit = maxiter if maxiter is not None else max(2000, rhs.size)

    def precondition(v: F64) -> F64:
        return inv_diag * v + coarse(v) if coarse is not None else inv_diag * v

    z = precondition(r)
    p = z.copy()
    rz = float(r @ z)
    for k in range(1, limit + 1):
        q = normal @ p
        pq = float(p @ q)
        if not (pq > 0 and np.isfinite(pq)):  # breakdown: not positive definite along p
            return CGResult(x, k, False)
        alpha = rz / pq
        x += alpha * p
        r -= alpha * q
        history.append(x.copy())
        residual = float(np.linalg.norm(r))
        if residual <= RTOL * norm or (tolerance is not None and _settled(x, history, residual / norm, tolerance)):
            return CGResult(x, k, True)
        z = precondition(r)
        rz_next = float(r @ z)
        p = z + (rz_next / rz) * p
        rz = rz_next
    return CGResult(x, limit, False)


def _settled(x: F64, history: deque[F64], residual: float, tolerance: ErrorTolerance) -> bool:
    """Whether the error of ``x``, estimated from how it moved over ``history``, is within ``tolerance``.

    See :data:`DELAY`; a relative ``residual`` above :data:`RESIDUAL_GUARD` is never settled.
    """
    if len(history) < 2 * DELAY + 1 or residual > RESIDUAL_GUARD:
        return False
    recent = float(np.max(np.abs(x - history[DELAY])))
    before = float(np.max(np.abs(history[DELAY] - history[0])))
    if recent >= before:  # not contracting: no tail estimate
        return False
    contraction = recent / before
    estimate = recent * max(1.0, contraction / (1.0 - contraction))
    return estimate <= tolerance(float(np.max(np.abs(x))))


def jacobi(normal: Normal) -> F64:
    """Inverse diagonal of ``normal`` (1 where the diagonal is not positive)."""
    diag = normal.diagonal()
    return np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)


def solve_normal_equations(
    normal: Normal,
    rhs: F64,
    coarse: sp.csr_matrix | CoarseSolver | None = None,
    tolerance: ErrorTolerance | None = None,
) -> F64:
    """Solve symmetric positive (semi)definite normal equations ``normal @ x = rhs``.

    Conjugate gradients preconditioned by Jacobi plus, with ``coarse`` (a :func:`coarse_space`
    prolongation, or its :class:`CoarseSolver` factorized for a nearby matrix), an exact
    solve on the coarse space (a two-level additive preconditioner that takes out the smooth
    modes of the fields and the image-to-image modes). Fields of many images on a block grid
    couple like a 3-D lattice, where sparse LU fill-in explodes: 50 dates x 1024 blocks took
    143 s per solve by LU, 2.7 s by Jacobi CG and 0.8 s two-level to a relative residual of
    1e-8 (about 0.05 s to the local step's error tolerance, with its operator and coarse
    factorization reused). LU remains the fallback when CG does not converge.

    Parameters
    ----------
    normal, rhs
        The system, formed or as a :class:`NormalOperator`.
    coarse
        Coarse space (factorized here) or its factorization, or ``None`` (Jacobi alone).
    tolerance
        ``None`` (default): stop at a relative residual of :data:`RTOL`. Otherwise the error
        of ``x`` to aim at, in its own units (see :func:`conjugate_gradients`).
    """
    solver = coarse
    if isinstance(coarse, sp.spmatrix | sp.sparray):
        solver = CoarseSolver.of(normal if isinstance(normal, sp.spmatrix | sp.sparray) else normal.tocsr(), coarse)
    with np.errstate(all="ignore"):
        result = conjugate_gradients(normal, rhs, jacobi(normal), solver, tolerance)
        if not result.converged:
            return np.asarray(spla.spsolve(normal.tocsr().tocsc(), rhs), dtype=np.float64)
    return result.x
