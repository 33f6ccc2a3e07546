"""Local gain fields on the block grid: bilinear interpolation of node values (in log-gain).

Nodes sit at block centres of the run's :class:`~stacrrn.types.BlockGrid`; an image's nodes
cover its frame (a :class:`~stacrrn.types.Box` of block indices). Positions outside the outer
node centres take the nearest edge value.

Statistics (block centres, cross-validation) evaluate fields in float64. Pixels get
:func:`field_at_pixels` (or :func:`window_field`, strip by strip): the interpolated log-gain
and its exponential in float32 (numpy's vectorized float32 ``exp``, about 4x faster than
float64's on CPUs without AVX-512),
a relative error below :data:`PIXEL_FIELD_RTOL`: 0.033 DN at 65535, far below a model's own
uncertainty and the half-DN rounding of integer outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from stacrrn.types import BlockGrid, Box

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

PIXEL_FIELD_RTOL = 5e-7
"""Bound on the relative error of :func:`field_at_pixels` against the float64 evaluation, for
gains in [0.5, 2]: numpy's float32 ``exp`` is within 2.52 ulp (3.0e-7 below 2), plus the
float32 rounding of a log-gain of at most ln 2 over two terms (1.2e-7)."""


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


def _log_gain_at(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F64:
    """Bilinear log-gain of ``field`` at grid positions -> ``(bands, n)``."""
    index, weight = bilinear_weights(rows, cols, blocks, frame)
    flat = np.log(field.reshape(field.shape[0], -1))
    return np.asarray(np.einsum("bkn,kn->bn", flat[:, index], weight), dtype=np.float64)


def evaluate_field(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F64:
    """Evaluate an image's gain field (``(bands, h, w)`` nodes) at grid positions -> ``(bands, n)``.

    Interpolation is bilinear in the logarithm of the gain (geometric), matching the solve,
    so the field is positive everywhere.
    """
    return np.exp(_log_gain_at(field, rows, cols, blocks, frame))


def _axis_matrix(pos: F64, block: int, start: int, n: int) -> F64:
    """Dense ``(len(pos), n)`` matrix of 1-D linear interpolation weights."""
    i0, i1, f = _axis(pos, block, start, n)
    mat = np.zeros((pos.size, n))
    k = np.arange(pos.size)
    np.add.at(mat, (k, i0), 1 - f)
    np.add.at(mat, (k, i1), f)
    return mat


def _lattice_weights(rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> tuple[F64, F64]:
    """Row and column interpolation matrices of the lattice ``rows x cols`` over the frame's nodes."""
    wr = _axis_matrix(rows, blocks.block_height, frame.row0, frame.height)
    return wr, _axis_matrix(cols, blocks.block_width, frame.col0, frame.width)


def evaluate_field_on_lattice(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F64:
    """Evaluate a gain field on the lattice ``rows x cols`` -> ``(bands, len(rows), len(cols))``.

    Same values as :func:`evaluate_field` on every pair (bilinear weights factor into a
    row and a column part), computed as two small matrix products: the fast path for
    windows of inputs that share the common grid's CRS.
    """
    wr, wc = _lattice_weights(rows, cols, blocks, frame)
    return np.asarray(np.exp(wr @ np.log(field) @ wc.T), dtype=np.float64)


FieldStrip = Callable[[slice], F32]
"""A window's gain field, strip by strip: rows of the window (a slice) -> ``(bands, rows, cols)`` float32."""


def window_field(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> FieldStrip:
    """An image's gain field over one window, evaluated a strip of rows at a time, for correcting pixels.

    ``rows`` and ``cols`` are either the axes of a lattice (1-D, the window of an input on the
    common grid's CRS) or one position per pixel (2-D, a reprojected window). On a lattice the
    interpolation along rows and the column weights are computed once for the window
    (:func:`evaluate_field_on_lattice`'s factors); a strip then costs one product, in float32,
    and the exponential, also in float32 (see the module). A strip's values do not depend on
    the other strips.
    """
    if rows.ndim == 1:
        wr, wc = _lattice_weights(rows, cols, blocks, frame)
        along_rows = (wr @ np.log(field)).astype(np.float32)  # (bands, rows, nodes across)
        across = wc.astype(np.float32).T

        def lattice_strip(strip: slice) -> F32:
            log_gain: F32 = along_rows[:, strip] @ across  # the wide product in float32
            return np.exp(log_gain, out=log_gain)

        return lattice_strip

    def pixels_strip(strip: slice) -> F32:
        r, c = rows[strip], cols[strip]
        log_gain = _log_gain_at(field, r.ravel(), c.ravel(), blocks, frame).astype(np.float32)
        return np.exp(log_gain, out=log_gain).reshape(-1, *r.shape)

    return pixels_strip


def field_at_pixels(field: F64, rows: F64, cols: F64, blocks: BlockGrid, frame: Box) -> F32:
    """An image's gain field at pixel positions, for correcting pixels -> ``(bands, *rows.shape)`` float32.

    :func:`window_field` of the whole window at once.
    """
    return window_field(field, rows, cols, blocks, frame)(slice(None))
