"""Sparse normal equations of the local step: conjugate gradients with a two-level preconditioner."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from stacrrn.types import Box

F64 = NDArray[np.float64]


COARSE_STEP = 4
"""Spacing, in blocks, of the coarse nodes of the local solve's two-level preconditioner."""


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


def coarse_space(frames: Sequence[Box], n_extra: int, step: int = COARSE_STEP) -> sp.csr_matrix:
    """Prolongation from coarse unknowns to all unknowns: each field bilinear on nodes every ``step`` blocks.

    The ``n_extra`` trailing unknowns (shifts, mean log-gains) are coarse unknowns themselves.
    """
    blocks = [sp.kron(_hat(f.height, step), _hat(f.width, step)) for f in frames]
    return sp.block_diag([*blocks, sp.eye(n_extra)], format="csr")


def solve_normal_equations(normal: sp.csr_matrix, rhs: F64, coarse: sp.csr_matrix | None = None) -> F64:
    """Solve symmetric positive (semi)definite normal equations ``normal @ x = rhs``.

    Conjugate gradients to a relative residual of 1e-8, preconditioned by Jacobi plus, with
    ``coarse`` (:func:`coarse_space`), an exact solve on the coarse space (a two-level additive
    preconditioner that takes out the smooth modes of the fields and the image-to-image
    modes). Fields of many images on a block grid couple like a 3-D lattice, where sparse LU
    fill-in explodes: 50 dates x 1024 blocks took 143 s per solve by LU, 2.7 s by Jacobi CG and
    0.8 s two-level, to the same solution. LU remains the fallback when CG does not converge.
    """
    diag = normal.diagonal()
    inv = np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)

    coarse_lu = None
    if coarse is not None:
        try:
            coarse_lu = spla.splu((coarse.T @ normal @ coarse).tocsc())
        except RuntimeError:  # a singular coarse problem: Jacobi alone still converges
            coarse_lu = None

    def apply(v: F64) -> F64:
        out = inv * v
        if coarse is not None and coarse_lu is not None:
            out += coarse @ coarse_lu.solve(coarse.T @ v)
        return np.asarray(out)

    precondition = spla.LinearOperator(normal.shape, matvec=apply, dtype=np.float64)
    with np.errstate(all="ignore"):
        x, info = spla.cg(normal, rhs, rtol=1e-8, atol=0.0, maxiter=max(2000, rhs.size), M=precondition)
        if info != 0:
            x = spla.spsolve(normal.tocsc(), rhs)
    return np.asarray(x, dtype=np.float64)
