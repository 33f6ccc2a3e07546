"""Local step: smooth gain fields per image and band, solved jointly on a block grid.

Yu et al. (2017) compare block means of each image with a reference block map and
interpolate the ratio bilinearly between block centres. Done image by image, that meets
the images half-way in their overlaps and leaves their interiors untouched. Here the
same block grid carries one unknown per image, band and block node (block centre), plus
one constant shift per image and band, and all images are solved together:

* data rows: in every block of every overlap, the globally corrected means of the two
  images over the *same* pixels, ``M_i = P_i + b_i`` with signal part ``P_i = a_i m_i``,
  must agree after correction ``g P + b + s``. With log-gains ``h = log g`` evaluated
  bilinearly at the overlap's centroid, the symmetric linearization is
  ``P (h_i - h_j) + (s_i - s_j) = M_j - M_i`` with ``P = (P_i + P_j)/2``.
  Rows depend on gain *ratios* only, so no common shrinking of the gains can lower them
  (no contrast collapse), and nothing is divided by a block mean, so zero and negative
  values (reflectance, offsets) are safe. The shifts absorb what an affine global step
  biased by the gradients left as an additive error (the field multiplies the signal
  ``a x``, not the offset, so a biased offset is a constant that ``s`` removes exactly);
* spread rows: in the same blocks, the within-block standard deviations must agree,
  ``S (h_i - h_j) = S_j - S_i``; offsets and shifts cancel there, so these rows tell a gain
  from a shift where block means alone cannot (low-contrast bands);
* smoothness rows: a tension spline on each log-gain field, curvature (thin-plate) plus a
  weaker membrane term (first differences): corrections learned in overlaps continue into
  the interior, while trends seen from one side only are damped. A pure thin plate recovers
  planar gradients almost exactly but invents slopes from a vignette seen on one side; a
  pure membrane stops trends at the overlap. See docs/design-notes.md for measurements;
* identity rows: reference images are held at ``g = 1, s = 0`` firmly. With references,
  other images are pulled weakly only towards a *flat* field (deviation from its own
  mean): their constant gain and shift come from the overlaps, anchored by the references.
  Without references every image is pulled weakly towards identity, which fixes the gauge.

Scaling the data scales ``M`` and ``s`` alike and leaves ``g`` unchanged: unit-agnostic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy import ndimage
from threadpoolctl import threadpool_limits

from stacrrn.core.fields import bilinear_weights
from stacrrn.core.global_model import GlobalFit
from stacrrn.core.settings import LocalParams
from stacrrn.core.sparse_solve import CoarseSolver, ErrorTolerance, coarse_space, solve_normal_equations
from stacrrn.core.statistics import Statistics
from stacrrn.types import BlockGrid, Box

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class LocalFit:
    """Per-image gain fields on the block grid and constant shifts.

    ``frames[i]`` is image ``i``'s box of block indices and ``fields[i]`` its node gains,
    shape ``(bands, frame rows, frame cols)``; ``shifts`` has shape ``(images, bands)``.
    Corrected = field * global gain * value + global offset + shift: the field multiplies
    the signal, as vignetting or illumination do, not the offset.
    """

    blocks: BlockGrid
    frames: list[Box]
    fields: list[F64]
    shifts: F64

    def to_dict(self) -> dict[str, Any]:
        """Serialize to plain JSON types."""
        return {
            "blocks": self.blocks.to_dict(),
            "frames": [f.to_list() for f in self.frames],
            "fields": [f.tolist() for f in self.fields],
            "shifts": self.shifts.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LocalFit:
        """Inverse of :meth:`to_dict`."""
        frames = [Box.from_list(f) for f in d["frames"]]
        fields = [np.asarray(v, float).reshape(-1, f.height, f.width) for v, f in zip(d["fields"], frames, strict=True)]
        return cls(BlockGrid.from_dict(d["blocks"]), frames, fields, np.asarray(d["shifts"], float))


def _smoothness_rows(
    frame: Box, offset: int, membrane: float, thin_plate: float
) -> tuple[NDArray[np.intp], NDArray[np.intp], F64]:
    """Smoothness rows of one frame's nodes (a tension spline).

    ``membrane`` weighs first differences along rows and columns (corrections spread flat
    beyond the overlaps); ``thin_plate`` weighs second differences and the cross term
    (corrections continue linearly). Returns ``(row ids, column ids, values)``; column ids
    are offset by ``offset``.
    """
    h, w = frame.height, frame.width
    idx = np.arange(h * w).reshape(h, w) + offset
    stencils: list[tuple[list[NDArray[np.intp]], list[float]]] = []
    if membrane > 0:
        if w >= 2:
            stencils.append(([idx[:, :-1], idx[:, 1:]], [membrane, -membrane]))
        if h >= 2:
            stencils.append(([idx[:-1, :], idx[1:, :]], [membrane, -membrane]))
    if thin_plate > 0:
        t = thin_plate
        if w >= 3:
            stencils.append(([idx[:, :-2], idx[:, 1:-1], idx[:, 2:]], [t, -2 * t, t]))
        if h >= 3:
            stencils.append(([idx[:-2, :], idx[1:-1, :], idx[2:, :]], [t, -2 * t, t]))
        if h >= 2 and w >= 2:
            s2 = float(np.sqrt(2.0)) * t
            stencils.append(([idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]], [s2, -s2, -s2, s2]))
    rows, cols, vals = [], [], []
    n_rows = 0
    for nodes, coefs in stencils:
        count = nodes[0].size
        ids = np.arange(n_rows, n_rows + count)
        for node, coef in zip(nodes, coefs, strict=True):
            rows.append(ids)
            cols.append(node.ravel())
            vals.append(np.full(count, coef))
        n_rows += count
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def evidence_nodes(stats: Statistics, frames: list[Box], min_fraction: float) -> list[NDArray[np.bool_]]:
    """Per image, the nodes of its frame whose block holds a usable overlap with another image.

    A block of an overlap is usable when at least ``min_fraction`` of the block is covered by
    valid pixels of both images (after cloud and PIF masks): the only places where another
    image says anything about this one.
    """
    area = stats.blocks.block_height * stats.blocks.block_width
    out = [np.zeros((f.height, f.width), bool) for f in frames]
    for (i, j), bs in stats.pair_blocks.items():
        used = bs.n >= min_fraction * area
        for k in (i, j):
            f = frames[k]
            rows = slice(bs.frame.row0 - f.row0, bs.frame.row1 - f.row0)
            out[k][rows, bs.frame.col0 - f.col0 : bs.frame.col1 - f.col0] |= used
    return out


def unsupported_nodes(evidence: NDArray[np.bool_], decay: float) -> NDArray[np.bool_]:
    """Nodes at ``decay`` blocks or more (Euclidean, node to node) from every evidence node."""
    if not evidence.any():
        return np.ones_like(evidence)
    distance = np.asarray(ndimage.distance_transform_edt(~evidence), dtype=np.float64)
    return np.asarray(distance >= decay)


def _prior_matrix(frames: list[Box], starts: NDArray[np.intp], refs: set[int], p: LocalParams) -> sp.csr_matrix:
    """Band-independent rows whose target is zero: field smoothness and the identity pull.

    Unknowns are ``[log-gain nodes..., shifts..., mean log-gain per image...]``. With
    references, a non-reference image is pulled only towards a *flat* field, written as
    ``ridge * (h_k - m_i)`` with ``m_i`` a free per-image unknown (sparse, and equal to
    penalizing the deviation from the field's own mean).
    """
    n_fields, n_images = int(starts[-1]), len(frames)
    rows, cols, vals = [], [], []
    count = 0

    def add(row_cols: list[NDArray[np.intp]], row_vals: list[float]) -> None:
        nonlocal count
        size = row_cols[0].size
        for c, v in zip(row_cols, row_vals, strict=True):
            rows.append(np.arange(count, count + size))
            cols.append(c)
            vals.append(np.full(size, v))
        count += size

    for i, frame in enumerate(frames):
        r, c, v = _smoothness_rows(frame, int(starts[i]), p.membrane, p.thin_plate)
        if r.size:
            rows.append(r + count)
            cols.append(c)
            vals.append(v)
            count += int(r.max()) + 1
        nodes = np.arange(starts[i], starts[i + 1])
        shift, mean = np.array([n_fields + i]), np.array([n_fields + n_images + i])
        if i in refs or not refs:
            weight = p.reference_weight if i in refs else p.ridge
            add([nodes], [weight])
            add([shift], [weight])
        else:
            add([nodes, np.full(nodes.size, mean[0])], [p.ridge, -p.ridge])
            add([shift], [p.ridge])
        add([mean], [1e-6])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(count, n_fields + 2 * n_images)
    )


@dataclass(frozen=True)
class OverlapBlocks:
    """Usable blocks of one overlap for one band: weights, signal parts, interpolation and fold."""

    i: int
    j: int
    weight: F64
    signal_i: F64
    signal_j: F64
    mean_i: F64
    mean_j: F64
    spread_i: F64
    spread_j: F64
    cols_i: NDArray[np.intp]
    weights_i: F64
    cols_j: NDArray[np.intp]
    weights_j: F64
    fold: NDArray[np.intp]

    def subset(self, keep: NDArray[np.bool_]) -> OverlapBlocks:
        """The same overlap restricted to the blocks ``keep`` marks."""
        return OverlapBlocks(
            self.i,
            self.j,
            self.weight[keep],
            self.signal_i[keep],
            self.signal_j[keep],
            self.mean_i[keep],
            self.mean_j[keep],
            self.spread_i[keep],
            self.spread_j[keep],
            self.cols_i[:, keep],
            self.weights_i[:, keep],
            self.cols_j[:, keep],
            self.weights_j[:, keep],
            self.fold[keep],
        )


@dataclass(frozen=True)
class StackedBlocks:
    """The blocks of several overlaps one after the other: :class:`OverlapBlocks` with per-block ``i, j``.

    One solve's rows are computed on these in one go (no loop over overlaps at each step).
    """

    i: NDArray[np.intp]
    j: NDArray[np.intp]
    weight: F64
    signal_i: F64
    signal_j: F64
    mean_i: F64
    mean_j: F64
    spread_i: F64
    spread_j: F64
    cols_i: NDArray[np.intp]
    weights_i: F64
    cols_j: NDArray[np.intp]
    weights_j: F64

    @classmethod
    def of(cls, overlaps: Sequence[OverlapBlocks]) -> StackedBlocks:
        """Stack ``overlaps`` (at least one) in their order."""

        def cat(name: str) -> Any:
            return np.concatenate([getattr(ob, name) for ob in overlaps], axis=-1)

        sizes = [ob.weight.size for ob in overlaps]
        return cls(
            np.repeat([ob.i for ob in overlaps], sizes),
            np.repeat([ob.j for ob in overlaps], sizes),
            *(cat(name) for name in ("weight", "signal_i", "signal_j", "mean_i", "mean_j", "spread_i", "spread_j")),
            *(cat(name) for name in ("cols_i", "weights_i", "cols_j", "weights_j")),
        )


FOLD_CELL = 2
"""Edge, in blocks, of the checkerboard cells that split overlap blocks into two folds."""


def _overlap_blocks(
    stats: Statistics, fit: GlobalFit, b: int, frames: list[Box], starts: NDArray[np.intp], p: LocalParams
) -> list[OverlapBlocks]:
    block_area = stats.blocks.block_height * stats.blocks.block_width
    nb = stats.n_bands
    out = []
    for (i, j), bs in sorted(stats.pair_blocks.items()):
        n = bs.n.ravel()
        use = n >= p.min_fraction * block_area
        if not use.any():
            continue
        sums = bs.sums.reshape(bs.sums.shape[0], -1)[:, use]
        nn = n[use]
        m_i, m_j = sums[b] / nn, sums[nb + b] / nn
        p_i, p_j = fit.gains[i, b] * m_i, fit.gains[j, b] * m_j
        sd_i = np.abs(fit.gains[i, b]) * np.sqrt(np.maximum(sums[2 * nb + b] / nn - m_i**2, 0.0))
        sd_j = np.abs(fit.gains[j, b]) * np.sqrt(np.maximum(sums[3 * nb + b] / nn - m_j**2, 0.0))
        idx_i, wt_i = bilinear_weights(sums[-2] / nn, sums[-1] / nn, stats.blocks, frames[i])
        idx_j, wt_j = bilinear_weights(sums[-2] / nn, sums[-1] / nn, stats.blocks, frames[j])
        block_rows, block_cols = np.divmod(np.flatnonzero(use), bs.frame.width)
        fold = ((block_rows + bs.frame.row0) // FOLD_CELL + (block_cols + bs.frame.col0) // FOLD_CELL) % 2
        out.append(
            OverlapBlocks(
                i,
                j,
                np.sqrt(nn / block_area),
                p_i,
                p_j,
                p_i + fit.offsets[i, b],
                p_j + fit.offsets[j, b],
                sd_i,
                sd_j,
                idx_i + starts[i],
                wt_i,
                idx_j + starts[j],
                wt_j,
                fold.astype(np.intp),
            )
        )
    return out


def _robust_weights(residuals: list[F64], huber: float, redescend: bool) -> list[F64]:
    """Huber weights ``min(1, k s / |r|)``, or Tukey's biweight ``(1 - (r / c s)^2)^2`` (zero beyond ``c s``).

    ``s`` is the robust (MAD) scale of all residuals; ``c = 4.685`` (95 % efficiency under
    Gaussian noise, as Huber's 1.345). The biweight gives blocks whose difference no smooth
    field explains (snow, a new field, a missed cloud) no weight at all, where Huber still
    lets them pull; it needs a robust start, so the first iterations use Huber. Only fields
    bounded to the overlaps use it: on the Sentinel-2 tuning tiles it cost image-wide fields
    accuracy on planar gradients (truth RMSE 0.237 -> 0.255 of the band's spread), whose
    large early residuals in the far corners of overlaps it discards.
    """
    if huber <= 0:
        return [np.ones_like(r) for r in residuals]
    r_all = np.abs(np.concatenate(residuals))
    s = 1.4826 * float(np.median(r_all)) if r_all.size else 0.0
    if s <= 0:
        return [np.ones_like(r) for r in residuals]
    if redescend:
        return [np.clip(1 - (r / (TUKEY * s)) ** 2, 0.0, None) ** 2 for r in residuals]
    return [np.minimum(1.0, huber * s / np.maximum(np.abs(r), 1e-300)) for r in residuals]


TUKEY = 4.685
"""Tukey biweight threshold in robust standard deviations of the block residuals."""

HUBER_ITERATIONS = 2
"""Gauss-Newton iterations with Huber weights before the biweight takes over."""


def block_residuals(
    x: F64, ob: OverlapBlocks | StackedBlocks, n_fields: int, scale: float
) -> tuple[F64, F64, F64, F64]:
    """Fields at the blocks and residuals of one overlap (or stacked overlaps) under the unknowns ``x``.

    Returns ``(g_i, g_j, mean residual, spread residual)``: corrected block mean of ``j``
    minus that of ``i`` (shifts included) and the same for block standard deviations.
    """
    g_i = np.exp(np.einsum("kn,kn->n", x[ob.cols_i], ob.weights_i))
    g_j = np.exp(np.einsum("kn,kn->n", x[ob.cols_j], ob.weights_j))
    s_i, s_j = x[n_fields + ob.i] * scale, x[n_fields + ob.j] * scale
    mean_res = (g_j * ob.signal_j + ob.mean_j - ob.signal_j + s_j) - (g_i * ob.signal_i + ob.mean_i - ob.signal_i + s_i)
    return g_i, g_j, mean_res, g_j * ob.spread_j - g_i * ob.spread_i


@dataclass(frozen=True)
class BlockDesign:
    """What one solve's data rows share at every Gauss-Newton step: where each block samples the fields.

    ``diff @ v`` is, per block, ``v`` bilinearly at the block's centroid in image ``i``'s field
    minus in image ``j``'s; ``shift_i``, ``shift_j`` number the blocks' shifts among the free
    unknowns (``n_free`` where a shift is fixed; ``None`` when all are). Columns are the free
    unknowns only.
    """

    diff: sp.csr_matrix
    diff_t: sp.csr_matrix
    diff_squared_t: sp.csr_matrix
    shift_i: NDArray[np.intp] | None
    shift_j: NDArray[np.intp] | None
    n_free: int

    @classmethod
    def of(cls, blocks: StackedBlocks, n_fields: int, free: NDArray[np.bool_]) -> BlockDesign:
        """The design of ``blocks``' rows over the ``free`` unknowns."""
        n_free = int(np.count_nonzero(free))
        columns = np.where(free, np.cumsum(free) - 1, -1)
        nodes = columns[np.concatenate([blocks.cols_i, blocks.cols_j]).T]
        weights = np.concatenate([blocks.weights_i, -blocks.weights_j]).T
        keep = nodes >= 0
        indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        diff = sp.csr_matrix((weights[keep], nodes[keep], indptr), shape=(blocks.weight.size, n_free))
        diff.sum_duplicates()  # a node twice in a row (clamped at a frame's edge) must be one entry to be squared
        diff_t = diff.T.tocsr()
        squared = diff_t.copy()
        squared.data **= 2
        shift_i, shift_j = columns[n_fields + blocks.i], columns[n_fields + blocks.j]
        if (shift_i < 0).all() and (shift_j < 0).all():
            return cls(diff, diff_t, squared, None, None, n_free)
        shift_i, shift_j = np.where(shift_i >= 0, shift_i, n_free), np.where(shift_j >= 0, shift_j, n_free)
        return cls(diff, diff_t, squared, shift_i, shift_j, n_free)

    def shift_diff(self, v: F64) -> F64:
        """Per block, the shift of ``i`` minus that of ``j`` in ``v`` (fixed shifts are 0)."""
        assert self.shift_i is not None and self.shift_j is not None
        padded = np.append(v, 0.0)
        return np.asarray(padded[self.shift_i] - padded[self.shift_j], dtype=np.float64)

    def shift_adjoint(self, z: F64, sign: float = -1.0) -> F64:
        """Transpose of :meth:`shift_diff` (``sign=1``: of the shifts' sum instead of difference)."""
        assert self.shift_i is not None and self.shift_j is not None
        size = self.n_free + 1
        out = np.bincount(self.shift_i, z, size) + sign * np.bincount(self.shift_j, z, size)
        return np.asarray(out[:-1], dtype=np.float64)

    def shift_incidence(self, values: F64) -> sp.csr_matrix:
        """The rows ``values * (s_i - s_j)``, one per block, formed."""
        assert self.shift_i is not None and self.shift_j is not None
        n, blocks = values.size, np.arange(values.size)
        rows, cols = np.concatenate([blocks, blocks]), np.concatenate([self.shift_i, self.shift_j])
        matrix = sp.csr_matrix((np.concatenate([values, -values]), (rows, cols)), shape=(n, self.n_free + 1))
        return sp.csr_matrix(matrix[:, : self.n_free])


@dataclass(frozen=True)
class DataNormal:
    """Normal matrix of one Gauss-Newton step: linearized data rows plus the prior's (fixed) normal matrix.

    The rows of a block are a *mean row* ``mean * (diff @ v) + shift * (s_i - s_j)`` and a
    *spread row* ``spread * (diff @ v)``; only these per-block coefficients change from step
    to step, so the normal matrix is applied through ``diff`` instead of being formed (forming
    it took a sparse product per step that cost more than all the CG iterations using it).
    """

    design: BlockDesign
    mean: F64
    shift: F64
    spread: F64
    gram: sp.csr_matrix

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the normal matrix."""
        return self.design.n_free, self.design.n_free

    @cached_property
    def squares(self) -> F64:
        """Per block, the sum of squares of the coefficients of ``diff`` in its two rows."""
        return np.asarray(self.mean**2 + self.spread**2, dtype=np.float64)

    def adjoint(self, mean_part: F64, spread_part: F64) -> F64:
        """The rows' transpose times ``[mean_part, spread_part]`` (one value per block each)."""
        out = self.design.diff_t @ (self.mean * mean_part + self.spread * spread_part)
        if self.design.shift_i is not None:
            out += self.design.shift_adjoint(self.shift * mean_part)
        return np.asarray(out, dtype=np.float64)

    def __matmul__(self, v: F64) -> F64:
        """The normal matrix times ``v``."""
        sampled = self.design.diff @ v
        if self.design.shift_i is None:
            out = self.design.diff_t @ (self.squares * sampled)
        else:
            mean_part = self.mean * sampled + self.shift * self.design.shift_diff(v)
            out = self.adjoint(mean_part, self.spread * sampled)
        return np.asarray(out + self.gram @ v, dtype=np.float64)

    def diagonal(self) -> F64:
        """Diagonal of the normal matrix."""
        out = self.design.diff_squared_t @ self.squares + self.gram.diagonal()
        if self.design.shift_i is not None:
            out += self.design.shift_adjoint(self.shift**2, sign=1.0)
        return np.asarray(out, dtype=np.float64)

    def rows(self) -> sp.csr_matrix:
        """The data rows, formed: mean rows, then spread rows."""
        mean_rows = sp.diags(self.mean) @ self.design.diff
        if self.design.shift_i is not None:
            mean_rows = mean_rows + self.design.shift_incidence(self.shift)
        return sp.csr_matrix(sp.vstack([mean_rows, sp.diags(self.spread) @ self.design.diff], format="csr"))

    def coarse_matrix(self, prolongation: sp.csr_matrix, prior_part: sp.csr_matrix) -> sp.csr_matrix:
        """``P^T N P``: the data rows' part formed on the coarse space, plus the prior's ``P^T gram P``."""
        if self.design.shift_i is None:  # both rows of a block are multiples of its row of diff
            sampled = self.design.diff @ prolongation
            return sp.csr_matrix(sampled.T @ sp.diags(self.squares) @ sampled + prior_part)
        coarse_rows = self.rows() @ prolongation
        return sp.csr_matrix(coarse_rows.T @ coarse_rows + prior_part)

    def tocsr(self) -> sp.csr_matrix:
        """The normal matrix, formed."""
        rows = self.rows()
        return sp.csr_matrix(rows.T @ rows + self.gram)


def _linearize(
    x: F64,
    blocks: StackedBlocks,
    design: BlockDesign,
    gram: sp.csr_matrix,
    n_fields: int,
    scale: float,
    spread: float,
    weights: tuple[float, bool],
) -> tuple[DataNormal, F64]:
    """Normal matrix and data part of the right-hand side of the robustly weighted rows linearized at ``x``.

    ``x = [log-gains, shifts/scale, mean log-gains]``. Per usable block of an overlap, a *mean
    row* (corrected block means agree; shifts enter here) divided by the band's value
    ``scale``, and a *spread row* (corrected within-block standard deviations agree; offsets
    and shifts cancel) divided by its pooled ``spread``: the spread rows separate a gain from
    a shift where block means alone cannot. Each is a coefficient times ``h_i - h_j`` at the
    block's centroid (plus the shifts). Rows are robustly weighted on the current residuals
    (``weights``: Huber threshold, and whether the biweight has taken over), so blocks with
    real change (clouds, seasons, new buildings) stop driving the fields.
    """
    g_i, g_j, mean_res, spread_res = block_residuals(x, blocks, n_fields, scale)
    (mean_w,) = _robust_weights([mean_res / scale], *weights)
    (spread_w,) = _robust_weights([spread_res / spread], *weights)
    w = blocks.weight * np.sqrt(mean_w) / scale
    ws = blocks.weight * np.sqrt(spread_w) / spread
    normal = DataNormal(
        design,
        w * 0.5 * (g_i * blocks.signal_i + g_j * blocks.signal_j),
        w * scale,
        ws * 0.5 * (g_i * blocks.spread_i + g_j * blocks.spread_j),
        gram,
    )
    return normal, normal.adjoint(w * mean_res, ws * spread_res)


STEP_TOLERANCE = 1e-5
"""Gauss-Newton stops when no unknown moves by more than this: 1e-5 in log-gain is a gain change
of 0.001 % (0.1 DN on a value of 10 000), and the same fraction of the band's scale for a shift."""

FORCING = 0.1
"""Each Gauss-Newton step is solved to this fraction of its own size (largest component): an
inexact Newton method with a constant forcing term. A step's error is the next linearization's
to remove, so solving it more exactly buys nothing until the steps are as small as
:data:`STEP_TOLERANCE`, where the floor :data:`CG_TOLERANCE` takes over."""

CG_TOLERANCE = 0.1 * STEP_TOLERANCE
"""Floor of each step's accuracy: the step that stops Gauss-Newton is known to a tenth of the
step tolerance, so the stopping test is decided on it, and the returned unknowns are that
close to the exactly solved step."""

PATH_TOLERANCE = 1e-4
"""Most the inexact steps may move the result, all steps together: 1e-4 in log-gain (0.01 %, 1 DN
on a value of 10 000). Where robust reweighting keeps Gauss-Newton from settling within its
iterations (blocks of real change that the biweight takes in and out), the result is the
last iterate of the path, not a fixed point, and every step's error moves it: each step may
then err by at most this over the number of iterations (to first order, the errors add up)."""


def _gauss_newton(
    x: F64,
    build: Callable[[F64, bool], tuple[DataNormal, F64]],
    coarse: Callable[[DataNormal], CoarseSolver | None],
    free: NDArray[np.bool_],
    iterations: int,
    switch: bool,
) -> F64:
    """Gauss-Newton from ``x`` on the normal equations ``build(x, redescend)`` in the ``free`` unknowns.

    With ``switch`` the first :data:`HUBER_ITERATIONS` steps use Huber weights and the biweight
    takes over after them, or as soon as a Huber step is below :data:`STEP_TOLERANCE` (the
    robust start is reached: another Huber step would not move it); without, the weights
    keep one form. Stops once a step with the final weights is below :data:`STEP_TOLERANCE`.
    The coarse solve of the first step (``coarse``) preconditions all the others: robust
    reweighting moves the matrix too little between steps to matter to a preconditioner.
    """
    solver: CoarseSolver | None = None
    tolerance = ErrorTolerance(CG_TOLERANCE, FORCING, PATH_TOLERANCE / max(iterations, 1))
    redescend = False
    for it in range(iterations):
        redescend = redescend or (switch and it >= HUBER_ITERATIONS)
        normal, rhs = build(x, redescend)
        if it == 0:
            solver = coarse(normal)
        step = solve_normal_equations(normal, rhs, solver, tolerance)
        if not np.all(np.isfinite(step)):  # degenerate blocks: the band keeps the global model (fields 1)
            return np.zeros_like(x)
        x[free] += step
        if np.max(np.abs(step), initial=0.0) < STEP_TOLERANCE:
            if redescend or not switch:
                break
            redescend = True
    return x


@dataclass(frozen=True)
class SolveLayout:
    """What all solves with the same fields held at identity share (folds and bands alike).

    ``free`` unknowns, the prior's normal matrix on them (``gram``), the preconditioner's
    coarse space restricted to them (``coarse``) and the prior's part of its coarse matrix.
    """

    free: NDArray[np.bool_]
    gram: sp.csr_matrix
    coarse: sp.csr_matrix
    coarse_gram: sp.csr_matrix


@dataclass(frozen=True)
class BandData:
    """What the local solve of one band works on: its usable overlap blocks and scales."""

    overlaps: list[OverlapBlocks]
    scale: float
    spread: float


@dataclass(frozen=True)
class LocalProblem:
    """The local solve of one run, band by band: layout, prior and preconditioner.

    Built once (:meth:`build`); :meth:`solve` then fits any subset of the overlap blocks of
    a band, with any images' fields held at identity (cross-validation and the final fit).
    """

    stats: Statistics
    fit: GlobalFit
    frames: list[Box]
    starts: NDArray[np.intp]
    prior_gram: sp.csr_matrix
    coarse: sp.csr_matrix
    params: LocalParams
    fixed: NDArray[np.bool_]
    layouts: dict[tuple[int, ...], SolveLayout] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, stats: Statistics, fit: GlobalFit, references: Sequence[int] | None, params: LocalParams
    ) -> LocalProblem:
        """Frames, prior rows, coarse space and fixed unknowns of a run.

        With ``extent="overlaps"`` the nodes without evidence within ``decay`` blocks and all
        shifts (a constant shift acts on the whole image) are fixed: fields exactly 1 there.
        """
        frames = [stats.blocks.blocks_of(fp) for fp in stats.footprints]
        starts = np.cumsum([0] + [f.height * f.width for f in frames]).astype(np.intp)
        fixed = np.zeros(int(starts[-1]) + 2 * stats.n_images, bool)
        if params.extent == "overlaps":
            evidence = evidence_nodes(stats, frames, params.min_fraction)
            fixed[: starts[-1]] = np.concatenate([unsupported_nodes(e, params.decay).ravel() for e in evidence])
            fixed[starts[-1] : starts[-1] + stats.n_images] = True
        refs = set(references) if references is not None else set()
        prior = _prior_matrix(frames, starts, refs, params)
        # the prior rows are the same at every Gauss-Newton step, band and fold: their normal matrix once
        gram = (prior.T @ prior).tocsr()
        return cls(stats, fit, frames, starts, gram, coarse_space(frames, 2 * stats.n_images), params, fixed)

    @property
    def n_fields(self) -> int:
        """Number of field nodes (all images)."""
        return int(self.starts[-1])

    def band(self, b: int) -> BandData:
        """Usable overlap blocks of band ``b`` and the band's value and spread scales."""
        stats, fit = self.stats, self.fit
        mu = fit.gains[:, b] * np.array([m.mean[b] for m in stats.images]) + fit.offsets[:, b]
        sd = np.abs(fit.gains[:, b]) * np.array([m.std[b] for m in stats.images])
        scale = float(np.sqrt(np.mean(mu**2 + sd**2))) or 1.0
        spread = float(np.sqrt(np.mean(sd**2))) or 1.0
        return BandData(_overlap_blocks(stats, fit, b, self.frames, self.starts, self.params), scale, spread)

    def free_unknowns(self, identity: Sequence[int] = ()) -> NDArray[np.bool_]:
        """The unknowns solved for when the fields of ``identity`` are held at 1.

        An image's mean log-gain enters only the prior rows of its own nodes: with all of them
        fixed it stays at its optimum, 0, and is not solved for either.
        """
        free = ~self.fixed
        for i in identity:
            free[self.starts[i] : self.starts[i + 1]] = False
            free[self.n_fields + i] = False
        n = self.stats.n_images
        nodes = [free[self.starts[i] : self.starts[i + 1]].any() for i in range(n)]
        free[self.n_fields + n :] &= np.array(nodes, dtype=bool)
        return free

    def layout(self, identity: Sequence[int] = ()) -> SolveLayout:
        """The :class:`SolveLayout` with the fields of ``identity`` held at 1 (built once per set)."""
        key = tuple(sorted(set(identity)))
        if key not in self.layouts:  # a race between band threads only builds it twice
            free = self.free_unknowns(key)
            coarse = self.coarse[free]
            coarse = sp.csr_matrix(coarse[:, np.flatnonzero(coarse.getnnz(axis=0))])
            gram = sp.csr_matrix(self.prior_gram[free][:, free])
            self.layouts[key] = SolveLayout(free, gram, coarse, sp.csr_matrix(coarse.T @ gram @ coarse))
        return self.layouts[key]

    def solve(self, b: int, data: BandData, identity: Sequence[int] = ()) -> F64:
        """Gauss-Newton on band ``b``'s blocks in ``data``, the fields of ``identity`` held at 1.

        Returns the unknowns: log-gain nodes, shifts over the band's scale, mean log-gains.
        """
        p = self.params
        x = np.zeros(self.n_fields + 2 * self.stats.n_images)
        if b in self.fit.unfitted:  # the global step found nothing to relate the images by in this band
            return x
        overlaps = [ob for ob in data.overlaps if ob.weight.size]
        layout = self.layout(identity)
        if not (overlaps and layout.free.any()):
            return x
        blocks = StackedBlocks.of(overlaps)
        design = BlockDesign.of(blocks, self.n_fields, layout.free)

        def build(at: F64, redescend: bool) -> tuple[DataNormal, F64]:
            weights = (p.huber, redescend)
            normal, rhs = _linearize(at, blocks, design, layout.gram, self.n_fields, data.scale, data.spread, weights)
            return normal, rhs - np.asarray(self.prior_gram @ at, dtype=np.float64)[layout.free]

        def coarse(normal: DataNormal) -> CoarseSolver | None:
            # one factorization per solve (its first step's), not shared between the folds of the
            # cross-validation: a fold keeps about half of each overlap's blocks, and where images
            # span few blocks (1024 scenes of 256 px) the other fold's coarse matrix lacks whole
            # couplings: CG then took 3000-8800 iterations instead of 10-100 (34 s per band)
            return CoarseSolver.factorize(normal.coarse_matrix(layout.coarse, layout.coarse_gram), layout.coarse)

        switch = p.extent == "overlaps" and p.huber > 0
        return _gauss_newton(x, build, coarse, layout.free, p.iterations, switch)

    def solve_all(self, kept: NDArray[np.bool_] | None = None) -> LocalFit:
        """Solve every band on all its blocks; where ``kept`` is ``False`` that image's field stays 1."""

        def solve_band(b: int) -> tuple[F64, float]:
            data = self.band(b)
            identity = [] if kept is None else [int(i) for i in np.flatnonzero(~kept[:, b])]
            return self.solve(b, data, identity), data.scale

        return self.to_fit(per_band(solve_band, self.stats.n_bands))

    def to_fit(self, solutions: Sequence[tuple[F64, float]]) -> LocalFit:
        """The :class:`LocalFit` of per-band solutions ``(unknowns, scale)``."""
        nb, n = self.stats.n_bands, self.stats.n_images
        fields = [np.ones((nb, f.height, f.width)) for f in self.frames]
        shifts = np.zeros((n, nb))
        for b, (x, scale) in enumerate(solutions):
            for i, frame in enumerate(self.frames):
                fields[i][b] = np.exp(x[self.starts[i] : self.starts[i + 1]]).reshape(frame.height, frame.width)
            shifts[:, b] = x[self.n_fields : self.n_fields + n] * scale
        return LocalFit(self.stats.blocks, self.frames, fields, shifts)


T = TypeVar("T")


def per_band(task: Callable[[int], T], n_bands: int) -> list[T]:
    """``task(b)`` for every band, side by side on threads with one BLAS thread each."""
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(min(n_bands, os.cpu_count() or 1)) as pool:
        return list(pool.map(task, range(n_bands)))


def solve_local(
    stats: Statistics,
    fit: GlobalFit,
    references: Sequence[int] | None = None,
    params: LocalParams | None = None,
    kept: NDArray[np.bool_] | None = None,
) -> LocalFit:
    """Fit smooth gain fields (and constant shifts) removing what the global step left in overlaps.

    Parameters
    ----------
    stats
        Pass-1 statistics, including per-pair block sums.
    fit
        The global model; the local step works on globally corrected values.
    references
        Images held at identity. ``None`` (default) treats all images alike.
    params
        Extent and weights of the solve.
    kept
        ``(images, bands)``: where ``False``, that image's field in that band is held at 1
        (see :func:`stacrrn.core.local_validation.cross_validate`). Default: all free.

    Returns
    -------
    LocalFit
        Node gains and shifts per image and band;
        corrected = field * gain * value + offset + shift. A band whose system is singular (or
        that the global step left unfitted) keeps fields of 1.
    """
    return LocalProblem.build(stats, fit, references, params or LocalParams()).solve_all(kept)
