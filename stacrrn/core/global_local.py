"""The global and local steps together: evidence-bounded fields by default, alternation for image-wide ones.

``extent="overlaps"`` (default): the global model is the global step's, unchanged, and the
local fields live near the overlaps only (exactly 1 beyond ``decay`` blocks), so wherever no
other image says anything the output is the global step's output.

``extent="image"``: smooth gradients bias the global step: an overlap at the bright edge of
one image and the dark edge of another yields a wrong gain and an offset that compensates
it, and the local fields then have to carry that error as well. Alternating removes the
bias: after each local solve, the moments of every overlap and image are rescaled by the
mean field the local model assigns there (the field multiplies the signal), the global model
is solved again on these gradient-compensated moments, and the local model again on top of
it. The compensated moments carry the fields' common part, which no overlap constrains
without a reference: the result is put back on the global step's gauge at the end
(:func:`regauge`), so no gain drifts through the alternation.

Fields bounded to the overlaps are cross-validated first (:mod:`stacrrn.core.local_validation`):
an image keeps its field in a band only where it predicts held-out overlap blocks better
than the global model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.fields import evaluate_field
from stacrrn.core.global_model import GlobalFit, solve_global
from stacrrn.core.local_model import LocalFit, LocalProblem, solve_local
from stacrrn.core.local_validation import LocalValidation, cross_validate
from stacrrn.core.moments import BlockSums, ImageMoments, PairMoments
from stacrrn.core.settings import LocalParams
from stacrrn.core.statistics import Statistics

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class GlobalLocalFit:
    """The fitted global and local models and the cross-validation that chose the fields."""

    global_fit: GlobalFit
    local_fit: LocalFit
    validation: LocalValidation


def _mean_field(bs: BlockSums, local: LocalFit, i: int, rows: F64, cols: F64) -> F64:
    """Count-weighted mean of image ``i``'s field over the blocks of ``bs`` (per band)."""
    n = bs.n.ravel()
    use = n > 0
    g = evaluate_field(local.fields[i], rows[use], cols[use], local.blocks, local.frames[i])
    return np.asarray((g * n[use]).sum(axis=1) / n[use].sum(), dtype=np.float64)


def _block_centres(bs: BlockSums, local: LocalFit) -> tuple[F64, F64]:
    rr, cc = np.mgrid[bs.frame.row0 : bs.frame.row1, bs.frame.col0 : bs.frame.col1]
    return (rr.ravel() + 0.5) * local.blocks.block_height, (cc.ravel() + 0.5) * local.blocks.block_width


def compensated_images(stats: Statistics, local: LocalFit) -> list[ImageMoments]:
    """Image moments with each image's values scaled by its mean field over its blocks."""
    images = []
    for i, (m, bs) in enumerate(zip(stats.images, stats.image_blocks, strict=True)):
        g = _mean_field(bs, local, i, *_block_centres(bs, local)) if m.n else np.ones(stats.n_bands)
        images.append(ImageMoments(m.n, m.mean * g, m.m2 * g * g))
    return images


def compensate(stats: Statistics, local: LocalFit) -> tuple[list[ImageMoments], dict[tuple[int, int], PairMoments]]:
    """Image and pair moments with each image's values scaled by its mean field there."""
    pairs = {}
    for (i, j), pm in stats.pairs.items():
        bs = stats.pair_blocks[(i, j)]
        rows, cols = _block_centres(bs, local)
        gi, gj = _mean_field(bs, local, i, rows, cols), _mean_field(bs, local, j, rows, cols)
        pairs[(i, j)] = PairMoments(
            pm.n, pm.mean_i * gi, pm.mean_j * gj, pm.m2_i * gi * gi, pm.m2_j * gj * gj, pm.c_ij * gi * gj
        )
    return compensated_images(stats, local), pairs


def regauge(stats: Statistics, gfit: GlobalFit, local: LocalFit) -> GlobalFit:
    """Put a global+local model back on the global step's gauge, per connected component and band.

    The global step holds the mean of the anchors' corrected means and the mean of their
    corrected spreads at the originals. One common affine map per component and band (it
    changes no agreement between images) makes the same true of the whole model, the fields'
    mean over each image included.
    """
    images = compensated_images(stats, local)
    gains, offsets = gfit.gains.copy(), gfit.offsets.copy()
    for component, anchors in zip(gfit.components, gfit.anchors, strict=True):
        original_mean = np.mean([stats.images[k].mean for k in anchors], axis=0)
        original_std = np.mean([stats.images[k].std for k in anchors], axis=0)
        mean = np.mean([gains[k] * images[k].mean + offsets[k] for k in anchors], axis=0)
        std = np.mean([np.abs(gains[k]) * images[k].std for k in anchors], axis=0)
        scale = np.where(std > 0, original_std / np.where(std > 0, std, 1.0), 1.0)
        gains[component] *= scale
        offsets[component] = scale * offsets[component] + (original_mean - scale * mean)
    return GlobalFit(gains, offsets, gfit.components, gfit.anchors, gfit.isolated, gfit.unfitted)


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
    folded = GlobalFit(gains, offsets, gfit.components, gfit.anchors, gfit.isolated, gfit.unfitted)
    return folded, LocalFit(local.blocks, local.frames, fields, np.zeros_like(local.shifts))


def solve_global_local(
    stats: Statistics,
    references: Sequence[int] | None = None,
    min_overlap: int = 64,
    params: LocalParams | None = None,
    rounds: int = 4,
    estimator: str = "spread",
    base: GlobalFit | None = None,
) -> GlobalLocalFit:
    """Fit the global model and cross-validated local fields on top of it.

    Parameters
    ----------
    stats
        Pass-1 statistics.
    references
        Reference images (``None``: all images).
    min_overlap
        Minimum overlap of the global step.
    params
        Extent and weights of the local step.
    rounds
        With ``extent="image"``, most global/local alternations; they stop earlier at a fixed
        point (see :data:`ROUND_TOLERANCE`).
    estimator
        Relative gain estimator of the global step (see :func:`solve_global`).
    base
        A fixed global model instead of the global step (``method="local"``: the identity);
        it is then not solved again.

    Returns
    -------
    GlobalLocalFit
        Corrected = field * gain * value + offset. With ``extent="image"`` each field has a
        geometric mean of 1 over its image and shifts are folded into the offsets; with
        ``extent="overlaps"`` the global model is ``base`` or the global step's, unchanged.
    """
    p = params or LocalParams()
    first = base or solve_global(stats.images, stats.pairs, references, min_overlap, estimator)
    problem = LocalProblem.build(stats, first, references, p)
    validation = cross_validate(problem) if p.validated else LocalValidation.all_kept(*first.gains.shape)
    local = problem.solve_all(validation.kept)
    if p.extent == "overlaps":
        return GlobalLocalFit(first, local, validation)
    gfit = first
    for _ in range(rounds - 1 if base is None else 0):
        images, pairs = compensate(stats, local)
        again = solve_global(images, pairs, references, min_overlap, estimator)
        if global_change(stats, gfit, again) < ROUND_TOLERANCE:  # a fixed point: another local solve adds nothing
            break
        gfit, local = again, solve_local(stats, again, references, p, validation.kept)
    folded, local = fold_constants(stats, gfit, local)
    return GlobalLocalFit(regauge(stats, folded, local), local, validation)


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
