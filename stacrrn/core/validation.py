"""Validation on held-out pseudo-invariant pixels: do the corrected images agree there.

Pass 1 sets aside whole cells of the grid (:func:`stacrrn.core.pif.holdout_cells`) and
keeps, per pair and block, the sums ``x_i, x_j, x_i**2, x_j**2, x_i*x_j`` of those pixels
(never used by the fit). Any affine correction per block maps these sums to the sums of
the corrected values exactly, so the before/after tests need no second pass: the local
field is taken at each block's centre (exact for the global model, and up to the field's
variation inside one block for the local one).

Per image and band, against its partner images (the references it overlaps, else all its
partners), pooled over their held-out pixels:

- paired t-test on the means (``d = y_image - y_partner`` per pixel),
- F-test on the variances (``var(y_image) / var(y_partner)``; the pixels are paired, so
  read the p-value as a guide rather than an exact level),
- RMSE of ``d`` and Pearson correlation.

With millions of pixels even tiny differences are "significant": judge by the effect
sizes (mean difference, variance ratio, RMSE), which the report puts first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import fdtr, stdtr

from stacrrn.core.fields import evaluate_field
from stacrrn.core.global_model import GlobalFit
from stacrrn.core.local_model import LocalFit
from stacrrn.core.moments import BlockSums
from stacrrn.core.statistics import Statistics

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Agreement:
    """Agreement of one image with its partners in one band, over held-out pixels."""

    n: int
    mean_difference: float
    t: float
    t_pvalue: float
    variance_ratio: float
    f_pvalue: float
    rmse: float
    correlation: float

    def to_dict(self) -> dict[str, float | None]:
        """Plain JSON types (``None`` for undefined or infinite figures, which JSON cannot hold)."""
        return {k: float(v) if np.isfinite(v) else None for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ImageValidation:
    """Held-out agreement of one image, per band, before and after the correction."""

    image: int
    partners: list[int]
    before: list[Agreement]
    after: list[Agreement]


def _affine_per_block(
    bs: BlockSums, i: int, b: int, gfit: GlobalFit | None, lfit: LocalFit | None
) -> tuple[F64, float]:
    """Gain (per block of ``bs``) and offset of image ``i`` in band ``b``."""
    if gfit is None:
        return np.ones(bs.n.shape), 0.0
    gain = np.full(bs.n.shape, gfit.gains[i, b])
    if lfit is not None:
        rr, cc = np.mgrid[bs.frame.row0 : bs.frame.row1, bs.frame.col0 : bs.frame.col1]
        rows, cols = (rr.ravel() + 0.5) * lfit.blocks.block_height, (cc.ravel() + 0.5) * lfit.blocks.block_width
        field = evaluate_field(lfit.fields[i], rows, cols, lfit.blocks, lfit.frames[i])[b]
        gain = gain * field.reshape(bs.n.shape)
    return gain, float(gfit.offsets[i, b])


def _corrected_sums(
    bs: BlockSums, n_bands: int, b: int, first: int, second: int, gfit: GlobalFit | None, lfit: LocalFit | None
) -> F64:
    """``[n, Σy_i, Σy_j, Σy_i², Σy_j², Σy_i·y_j]`` of the corrected held-out pixels of a pair."""
    n = bs.n
    sx_i, sx_j, sxx_i, sxx_j, sxy = (bs.sums[k * n_bands + b] for k in range(5))
    a_i, o_i = _affine_per_block(bs, first, b, gfit, lfit)
    a_j, o_j = _affine_per_block(bs, second, b, gfit, lfit)
    return np.array(
        [
            n.sum(),
            (a_i * sx_i + o_i * n).sum(),
            (a_j * sx_j + o_j * n).sum(),
            (a_i * a_i * sxx_i + 2 * a_i * o_i * sx_i + o_i * o_i * n).sum(),
            (a_j * a_j * sxx_j + 2 * a_j * o_j * sx_j + o_j * o_j * n).sum(),
            (a_i * a_j * sxy + a_i * o_j * sx_i + o_i * a_j * sx_j + o_i * o_j * n).sum(),
        ]
    )


def agreement(sums: F64) -> Agreement:
    """Tests from pooled sums ``[n, Σy, Σz, Σy², Σz², Σyz]`` of paired values ``(y, z)``."""
    n, sy, sz, syy, szz, syz = (float(v) for v in sums)
    if n < 3:
        nan = float("nan")
        return Agreement(int(n), nan, nan, nan, nan, nan, nan, nan)
    mean_d = (sy - sz) / n
    msd = max((syy + szz - 2 * syz) / n, 0.0)
    var_d = max(msd - mean_d * mean_d, 0.0)
    var_y = max(syy / n - (sy / n) ** 2, 0.0)
    var_z = max(szz / n - (sz / n) ** 2, 0.0)
    cov = syz / n - (sy / n) * (sz / n)
    dof = n - 1
    t = mean_d / np.sqrt(var_d / dof) if var_d > 0 else (0.0 if mean_d == 0 else float(np.copysign(np.inf, mean_d)))
    ratio = var_y / var_z if var_z > 0 else float("nan")
    f_cdf = float(fdtr(dof, dof, ratio)) if np.isfinite(ratio) else float("nan")
    return Agreement(
        int(n),
        mean_d,
        float(t),
        float(2 * stdtr(dof, -abs(t))),
        ratio,
        2 * min(f_cdf, 1 - f_cdf),
        float(np.sqrt(msd)),
        cov / np.sqrt(var_y * var_z) if var_y > 0 and var_z > 0 else float("nan"),
    )


def _partners(i: int, keys: list[tuple[int, int]], references: Sequence[int]) -> list[int]:
    others = [j if i == k else k for k, j in keys if i in (k, j)]
    refs = [j for j in others if j in references]
    return sorted(refs if refs and i not in references else others)


def validate_holdout(
    stats: Statistics, gfit: GlobalFit, lfit: LocalFit | None = None, references: Sequence[int] = ()
) -> list[ImageValidation]:
    """Before/after agreement of every image with its partners on held-out pixels.

    Parameters
    ----------
    stats
        Pass-1 statistics with ``holdout_blocks``.
    gfit, lfit
        The fitted model (``lfit`` ``None`` for a global-only model).
    references
        Reference images: an image that overlaps some is compared with those only.

    Returns
    -------
    list of ImageValidation
        One entry per image with held-out pixels (in image order).
    """
    keys = sorted(k for k, bs in stats.holdout_blocks.items() if bs.n.sum() > 0)
    out = []
    for i in range(stats.n_images):
        partners = _partners(i, keys, references)
        if not partners:
            continue
        before, after = [], []
        for b in range(stats.n_bands):
            pooled = {"before": np.zeros(6), "after": np.zeros(6)}
            for j in partners:
                bs = stats.holdout_blocks[(min(i, j), max(i, j))]
                first, second = (i, j) if i < j else (j, i)
                for label, g, lf in (("before", None, None), ("after", gfit, lfit)):
                    s = _corrected_sums(bs, stats.n_bands, b, first, second, g, lf)
                    pooled[label] += s if i < j else s[[0, 2, 1, 4, 3, 5]]
            before.append(agreement(pooled["before"]))
            after.append(agreement(pooled["after"]))
        out.append(ImageValidation(i, partners, before, after))
    return out
