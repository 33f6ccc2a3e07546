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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.statistics import Statistics
from stacrrn.errors import ParameterError, SolveError
from stacrrn.types import BlockGrid, Box

F64 = NDArray[np.float64]

LocalExtent = Literal["overlaps", "image"]
LOCAL_EXTENTS: tuple[LocalExtent, ...] = ("overlaps", "image")
"""Where the local step may correct: near the overlaps only (default) or across whole images."""


@dataclass(frozen=True)
class LocalParams:
    """Extent and weights of the local solve (dimensionless; defaults tested on real imagery).

    Attributes
    ----------
    extent
        ``overlaps`` (default): an image's field is supported by its overlaps with other
        images and is exactly 1 from ``decay`` blocks away from them, where no other image
        says anything (Yu et al.'s reference map leaves single-image blocks as the global
        step made them). ``image``: smooth fields across whole images, with constant shifts
        and alternation with the global step, for distortions that really are image-wide
        (vignetting, BRDF gradients across a swath).
    decay
        With ``extent="overlaps"``: distance in blocks from the nearest block with overlap
        evidence at which the field reaches 1 (and stays 1 beyond).
    cross_validate
        Keep an image's field in a band only where it predicts held-out overlap blocks better
        than the global model (two interleaved folds of overlap blocks).
    membrane
        Weight of first differences of the log-gain field between neighbouring nodes.
    thin_plate
        Weight of second differences (curvature) of the log-gain field.
    ridge
        Weight pulling non-reference fields towards flat (with references) or 1 (without).
    reference_weight
        Weight holding reference fields at 1.
    min_fraction
        A block of an overlap is used when at least this share of the block is covered.
    iterations
        Maximum Gauss-Newton iterations (the rows are relinearized and reweighted at each).
    huber
        Huber threshold in robust (MAD) standard deviations of the block residuals; 0
        disables the reweighting (plain least squares).
    """

    extent: LocalExtent = "overlaps"
    decay: float = 2.0
    cross_validate: bool = True
    membrane: float = 0.3
    thin_plate: float = 1.0
    ridge: float = 0.01
    reference_weight: float = 1000.0
    min_fraction: float = 0.05
    iterations: int = 8
    huber: float = 1.345

    def __post_init__(self) -> None:
        """Reject an unknown extent or a decay that is not a finite number of blocks >= 1.

        Raises
        ------
        ParameterError
            For an unknown ``extent`` or a ``decay`` below 1 block or not finite.
        """
        if self.extent not in LOCAL_EXTENTS:
            raise ParameterError(f"unknown --local-extent {self.extent!r}; choose one of {', '.join(LOCAL_EXTENTS)}")
        if not (isinstance(self.decay, int | float) and np.isfinite(self.decay) and self.decay >= 1):
            raise ParameterError(f"--local-decay must be a finite number of blocks >= 1, got {self.decay!r}")


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
class _OverlapBlocks:
    """Usable blocks of one overlap for one band: weights, signal parts and interpolation."""

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


def _overlap_blocks(
    stats: Statistics, fit: GlobalFit, b: int, frames: list[Box], starts: NDArray[np.intp], p: LocalParams
) -> list[_OverlapBlocks]:
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
        out.append(
            _OverlapBlocks(
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
            )
        )
    return out


def _huber_weights(residuals: list[F64], k: float = 1.345) -> list[F64]:
    """Huber weights ``min(1, k s / |r|)`` with ``s`` the robust (MAD) scale of all residuals."""
    if k <= 0:
        return [np.ones_like(r) for r in residuals]
    r_all = np.abs(np.concatenate(residuals))
    s = 1.4826 * float(np.median(r_all)) if r_all.size else 0.0
    if s <= 0:
        return [np.ones_like(r) for r in residuals]
    return [np.minimum(1.0, k * s / np.maximum(np.abs(r), 1e-300)) for r in residuals]


def _gauss_newton_step(
    x: F64,
    prior: sp.csr_matrix,
    overlaps: list[_OverlapBlocks],
    n_fields: int,
    scale: float,
    spread: float,
    huber: float,
    coarse: sp.csr_matrix | None = None,
) -> F64:
    """One (robustly reweighted) Gauss-Newton update of ``x = [log-gains, shifts/scale, mean log-gains]``.

    Per usable block of an overlap, a *mean row* (corrected block means agree; shifts enter
    here) divided by the band's value ``scale``, and a *spread row* (corrected within-block
    standard deviations agree; offsets and shifts cancel) divided by its pooled ``spread``:
    the spread rows separate a gain from a shift where block means alone cannot. Rows are
    Huber-weighted on the current residuals, so blocks with real change (clouds, seasons,
    new buildings) stop driving the fields.
    """
    rows: list[NDArray[np.intp]] = []
    cols: list[NDArray[np.intp]] = []
    vals: list[F64] = []
    rhs: list[F64] = []
    count = 0

    def field_rows(ob: _OverlapBlocks, coef: F64) -> NDArray[np.intp]:
        """Rows with ``coef * (h_i - h_j)`` at the blocks' centroids; returns their ids."""
        nonlocal count
        ids = np.arange(count, count + coef.size)
        for k in range(4):
            rows.extend([ids, ids])
            cols.extend([ob.cols_i[k], ob.cols_j[k]])
            vals.extend([coef * ob.weights_i[k], -coef * ob.weights_j[k]])
        count += coef.size
        return ids

    state = []
    for ob in overlaps:
        g_i = np.exp(np.einsum("kn,kn->n", x[ob.cols_i], ob.weights_i))
        g_j = np.exp(np.einsum("kn,kn->n", x[ob.cols_j], ob.weights_j))
        s_i, s_j = x[n_fields + ob.i] * scale, x[n_fields + ob.j] * scale
        mean_res = (g_j * ob.signal_j + ob.mean_j - ob.signal_j + s_j) - (
            g_i * ob.signal_i + ob.mean_i - ob.signal_i + s_i
        )
        spread_res = g_j * ob.spread_j - g_i * ob.spread_i
        state.append((g_i, g_j, mean_res / scale, spread_res / spread))
    mean_w = _huber_weights([st[2] for st in state], huber)
    spread_w = _huber_weights([st[3] for st in state], huber)
    for ob, (g_i, g_j, mean_res, spread_res), wm, wsp in zip(overlaps, state, mean_w, spread_w, strict=True):
        w = ob.weight * np.sqrt(wm) / scale
        ids = field_rows(ob, w * 0.5 * (g_i * ob.signal_i + g_j * ob.signal_j))
        rows.extend([ids, ids])
        cols.extend([np.full(w.size, n_fields + ob.i), np.full(w.size, n_fields + ob.j)])
        vals.extend([w * scale, -w * scale])
        rhs.append(w * scale * mean_res)
        ws = ob.weight * np.sqrt(wsp) / spread
        field_rows(ob, ws * 0.5 * (g_i * ob.spread_i + g_j * ob.spread_j))
        rhs.append(ws * spread * spread_res)
    data = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(count, x.size))
    a_mat = sp.vstack([data, prior]).tocsr()
    target = np.concatenate([*rhs, -(prior @ x)])
    return solve_normal_equations((a_mat.T @ a_mat).tocsr(), a_mat.T @ target, coarse)


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


@dataclass(frozen=True)
class _LocalProblem:
    """The local solve of one run, band by band (see :func:`solve_local`)."""

    stats: Statistics
    fit: GlobalFit
    frames: list[Box]
    starts: NDArray[np.int64]
    prior: sp.csr_matrix
    coarse: sp.csr_matrix
    params: LocalParams

    def solve_band(self, b: int) -> tuple[F64, float]:
        """Gauss-Newton on band ``b``: the unknowns (log-gain nodes, shifts over ``scale``) and ``scale``."""
        stats, fit, p = self.stats, self.fit, self.params
        mu = fit.gains[:, b] * np.array([m.mean[b] for m in stats.images]) + fit.offsets[:, b]
        sd = np.abs(fit.gains[:, b]) * np.array([m.std[b] for m in stats.images])
        scale = float(np.sqrt(np.mean(mu**2 + sd**2))) or 1.0
        spread = float(np.sqrt(np.mean(sd**2))) or 1.0
        overlaps = _overlap_blocks(stats, fit, b, self.frames, self.starts, p)
        n_fields = int(self.starts[-1])
        x = np.zeros(n_fields + 2 * stats.n_images)
        for _ in range(p.iterations if overlaps else 0):
            step = _gauss_newton_step(x, self.prior, overlaps, n_fields, scale, spread, p.huber, self.coarse)
            if not np.all(np.isfinite(step)):
                raise SolveError(f"local model: the least-squares system of band {b + 1} is singular")
            x += step
            if np.max(np.abs(step)) < 1e-5:
                break
        return x, scale


def solve_local(
    stats: Statistics,
    fit: GlobalFit,
    references: Sequence[int] | None = None,
    params: LocalParams | None = None,
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
        Weights of the solve.

    Returns
    -------
    LocalFit
        Node gains and shifts per image and band;
        corrected = field * gain * value + offset + shift.

    Raises
    ------
    SolveError
        If the sparse system cannot be solved.
    """
    p = params or LocalParams()
    frames = [stats.blocks.blocks_of(fp) for fp in stats.footprints]
    starts = np.cumsum([0] + [f.height * f.width for f in frames])
    refs = set(references) if references is not None else set()
    prior, coarse = _prior_matrix(frames, starts, refs, p), coarse_space(frames, 2 * stats.n_images)
    problem = _LocalProblem(stats, fit, frames, starts, prior, coarse, p)
    nb = stats.n_bands
    # bands are independent problems: solved side by side, with one BLAS thread each
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(min(nb, os.cpu_count() or 1)) as pool:
        solutions = list(pool.map(problem.solve_band, range(nb)))
    n_fields = int(starts[-1])
    fields = [np.ones((nb, f.height, f.width)) for f in frames]
    shifts = np.zeros((stats.n_images, nb))
    for b, (x, scale) in enumerate(solutions):
        for i, frame in enumerate(frames):
            fields[i][b] = np.exp(x[starts[i] : starts[i + 1]]).reshape(frame.height, frame.width)
        shifts[:, b] = x[n_fields : n_fields + stats.n_images] * scale
    return LocalFit(stats.blocks, frames, fields, shifts)
