"""Local gain fields on the block grid: bilinear interpolation of node values (in log-gain).

Nodes sit at block centres of the run's :class:`~stacrrn.types.BlockGrid`; an image's nodes
cover its frame (a :class:`~stacrrn.types.Box` of block indices). Positions outside the outer
node centres take the nearest edge value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stacrrn.types import BlockGrid, Box

F64 = NDArray[np.float64]


def _axis(pos: F64, block: int, start: int, n: int) -> tuple[NDArray[np.intp], NDArray[np.intp], F64]:
    """Lower and upper node index and upper weight along one axis (clamped at the edge nodes)."""
    t = np.clip(pos / block - 0.5 - start, 0.0, n - 1)
    i0 = np.minimum(np.floor(t).astype(np.intp), max(n - 2, 0))
    return i0, np.minimum(i0 + 1, n - 1), t - i0


def bilinear_weights(rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> tuple[NDArray[np.intp], F64]:
    """Bilinear interpolation weights of frame nodes at grid positions.

    Parameters
    ----------
    rows, cols
        Positions in (fractional) pixel coordinates of the common grid; pixel centres are
        at ``k + 0.5``.
    blocks
        The block grid; nodes sit at block centres.
    frame
        Box of block indices whose nodes are interpolated; positions outside the outer
        node centres take the nearest edge value.

    Returns
    -------
    index, weight
        Arrays of shape ``(4, n)``: flat node indices into the frame and their weights.
    """
    v0, v1, fv = _axis(rows, blocks.block_height, frame.row0, frame.height)
    u0, u1, fu = _axis(cols, blocks.block_width, frame.col0, frame.width)
    w = frame.width
    index = np.stack([v0 * w + u0, v0 * w + u1, v1 * w + u0, v1 * w + u1])
    weight = np.stack([(1 - fv) * (1 - fu), (1 - fv) * fu, fv * (1 - fu), fv * fu])
    return index, weight


def evaluate_field(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F64:
    """Evaluate an image's gain field (``(bands, h, w)`` nodes) at grid positions -> ``(bands, n)``.

    Interpolation is bilinear in the logarithm of the gain (geometric), matching the solve,
    so the field is positive everywhere.
    """
    index, weight = bilinear_weights(rows, cols, blocks, frame)
    flat = np.log(field.reshape(field.shape[0], -1))
    return np.asarray(np.exp(np.einsum("bkn,kn->bn", flat[:, index], weight)), dtype=np.float64)


def _axis_matrix(pos: F64, block: int, start: int, n: int) -> F64:
    """Dense ``(len(pos), n)`` matrix of 1-D linear interpolation weights."""
    i0, i1, f = _axis(pos, block, start, n)
    mat = np.zeros((pos.size, n))
    k = np.arange(pos.size)
    np.add.at(mat, (k, i0), 1 - f)
    np.add.at(mat, (k, i1), f)
    return mat


def evaluate_field_on_lattice(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F64:
    """Evaluate a gain field on the lattice ``rows x cols`` -> ``(bands, len(rows), len(cols))``.

    Same values as :func:`evaluate_field` on every pair (bilinear weights factor into a
    row and a column part), computed as two small matrix products: the fast path for
    windows of inputs that share the common grid's CRS.
    """
    wr = _axis_matrix(rows, blocks.block_height, frame.row0, frame.height)
    wc = _axis_matrix(cols, blocks.block_width, frame.col0, frame.width)
    return np.asarray(np.exp(wr @ np.log(field) @ wc.T), dtype=np.float64)
