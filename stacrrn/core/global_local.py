"""Global and local steps solved alternately, so that each sees the other's correction.

Smooth gradients bias the global step: an overlap at the bright edge of one image and the
dark edge of another yields a wrong gain and an offset that compensates it. The local
fields then have to carry that error as well. Alternating removes the bias: after each
local solve, the moments of every overlap and image are rescaled by the mean field the
local model assigns there (the field multiplies the signal), the global model is solved
again on these gradient-compensated moments, and the local model again on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.global_model import GlobalFit, solve_global
from stacrrn.core.local_model import LocalFit, LocalParams, evaluate_field, solve_local
from stacrrn.core.metrics import overlap_consistency
from stacrrn.core.moments import BlockSums, ImageMoments, PairMoments
from stacrrn.core.statistics import Statistics

F64 = NDArray[np.float64]


def _mean_field(bs: BlockSums, local: LocalFit, i: int, rows: F64, cols: F64) -> F64:
    """Count-weighted mean of image ``i``'s field over the blocks of ``bs`` (per band)."""
    n = bs.n.ravel()
    use = n > 0
    g = evaluate_field(local.fields[i], rows[use], cols[use], local.blocks, local.frames[i])
    return np.asarray((g * n[use]).sum(axis=1) / n[use].sum(), dtype=np.float64)


def _block_centres(bs: BlockSums, local: LocalFit) -> tuple[F64, F64]:
    rr, cc = np.mgrid[bs.frame.row0 : bs.frame.row1, bs.frame.col0 : bs.frame.col1]
    return (rr.ravel() + 0.5) * local.blocks.block_height, (cc.ravel() + 0.5) * local.blocks.block_width


def compensate(stats: Statistics, local: LocalFit) -> tuple[list[ImageMoments], dict[tuple[int, int], PairMoments]]:
    """Image and pair moments with each image's values scaled by its mean field there."""
    images = []
    for i, (m, bs) in enumerate(zip(stats.images, stats.image_blocks, strict=True)):
        g = _mean_field(bs, local, i, *_block_centres(bs, local)) if m.n else np.ones(stats.n_bands)
        images.append(ImageMoments(m.n, m.mean * g, m.m2 * g * g))
    pairs = {}
    for (i, j), pm in stats.pairs.items():
        bs = stats.pair_blocks[(i, j)]
        rows, cols = _block_centres(bs, local)
        gi, gj = _mean_field(bs, local, i, rows, cols), _mean_field(bs, local, j, rows, cols)
        pairs[(i, j)] = PairMoments(
            pm.n, pm.mean_i * gi, pm.mean_j * gj, pm.m2_i * gi * gi, pm.m2_j * gj * gj, pm.c_ij * gi * gj
        )
    return images, pairs


def fold_constants(stats: Statistics, gfit: GlobalFit, local: LocalFit) -> tuple[GlobalFit, LocalFit]:
    """Move each field's constant part into the global gain and the shift into the offset.

    Only the products ``field * gain`` and sums ``offset + shift`` reach the pixels, so the
    output is unchanged; afterwards the global fit is the whole affine part (gains and
    offsets comparable with a global-only model) and each field has a geometric mean of 1
    over its image's pixels.
    """
    gains, offsets = gfit.gains.copy(), gfit.offsets + local.shifts
    fields = []
    for i, (field, bs) in enumerate(zip(local.fields, stats.image_blocks, strict=True)):
        weights = bs.n / max(float(bs.n.sum()), 1.0)
        scale = np.exp((np.log(field) * weights).sum(axis=(1, 2)))
        gains[i] *= scale
        fields.append(field / scale[:, None, None])
    folded = GlobalFit(gains, offsets, gfit.components, gfit.anchors, gfit.isolated)
    return folded, LocalFit(local.blocks, local.frames, fields, np.zeros_like(local.shifts))


def keep_where_better(
    stats: Statistics, global_only: GlobalFit, gfit: GlobalFit, local: LocalFit
) -> tuple[GlobalFit, LocalFit, list[bool]]:
    """Per band, keep the local model only where it makes overlapping blocks agree better.

    Agreement is the RMS, over all overlap blocks, of the differences of block means and of
    within-block standard deviations (what the local step fits).

    Real change (clouds, seasons) can pull the local fields away from what the overlaps
    agree on; a band whose overlap block means disagree more after the local step than
    after the global step alone falls back to the global-only model (identity field).

    Returns
    -------
    GlobalFit, LocalFit, list of bool
        The chosen model and, per band, whether the local step was kept.
    """
    before = overlap_consistency(stats, global_only)
    after = overlap_consistency(stats, gfit, local)
    disagreement_before = np.hypot(before.block_mean_diff, before.block_std_diff)
    disagreement_after = np.hypot(after.block_mean_diff, after.block_std_diff)
    keep = [bool(a < b) for a, b in zip(disagreement_after, disagreement_before, strict=True)]
    gains, offsets = gfit.gains.copy(), gfit.offsets.copy()
    fields = [f.copy() for f in local.fields]
    shifts = local.shifts.copy()
    for b, kept in enumerate(keep):
        if not kept:
            gains[:, b], offsets[:, b] = global_only.gains[:, b], global_only.offsets[:, b]
            shifts[:, b] = 0.0
            for f in fields:
                f[b] = 1.0
    chosen = GlobalFit(gains, offsets, gfit.components, gfit.anchors, gfit.isolated)
    return chosen, LocalFit(local.blocks, local.frames, fields, shifts), keep


def solve_global_local(
    stats: Statistics,
    references: Sequence[int] | None = None,
    min_overlap: int = 64,
    params: LocalParams | None = None,
    rounds: int = 4,
    estimator: str = "spread",
) -> tuple[GlobalFit, LocalFit]:
    """Alternate global and local solves; return the final pair.

    Parameters
    ----------
    stats
        Pass-1 statistics.
    references
        Reference images (``None``: all images).
    min_overlap
        Minimum overlap of the global step.
    params
        Local solve weights.
    rounds
        Most global/local alternations; they stop earlier at a fixed point (see
        :data:`ROUND_TOLERANCE`).
    estimator
        Relative gain estimator of the global step (see :func:`solve_global`).

    Returns
    -------
    GlobalFit, LocalFit
        Corrected = field * gain * value + offset (+ shift, folded into the offset: zero);
        each field has a geometric mean of 1 over its image.
    """
    global_only = solve_global(stats.images, stats.pairs, references, min_overlap, estimator)
    gfit, local = global_only, solve_local(stats, global_only, references, params)
    for _ in range(rounds - 1):
        images, pairs = compensate(stats, local)
        again = solve_global(images, pairs, references, min_overlap, estimator)
        if global_change(stats, gfit, again) < ROUND_TOLERANCE:  # a fixed point: another local solve adds nothing
            break
        gfit, local = again, solve_local(stats, again, references, params)
    gfit, local, _ = keep_where_better(stats, global_only, *fold_constants(stats, gfit, local))
    return gfit, local


ROUND_TOLERANCE = 1e-5
"""Alternation stops when a round moves no corrected image mean or spread by more than this
fraction of the band's scale: the local solve's own step tolerance (1e-5 in log-gain)."""


def global_change(stats: Statistics, a: GlobalFit, b: GlobalFit) -> float:
    """Largest change between two global fits of the corrected image means and spreads, over the band's scale."""
    mean = np.array([m.mean for m in stats.images])
    std = np.array([m.std for m in stats.images])
    scale = np.sqrt(np.mean((a.gains * mean + a.offsets) ** 2 + (a.gains * std) ** 2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    d_mean = np.abs((b.gains - a.gains) * mean + b.offsets - a.offsets)
    d_std = np.abs(b.gains - a.gains) * std
    return float(np.max(np.maximum(d_mean, d_std) / scale))
