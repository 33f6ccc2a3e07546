"""Quality metrics computed exactly from moments (no pixel access).

Overlap consistency of a model is derived from the raw joint moments: for the affine
global model ``x' = a x + b`` the corrected overlap means, standard deviations and the
pixelwise mean squared difference follow in closed form. The local step is judged on
block means of overlaps (the scale it works at).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.fields import evaluate_field, evaluate_field_on_lattice
from stacrrn.core.global_model import GlobalFit
from stacrrn.core.local_model import LocalFit
from stacrrn.core.statistics import Statistics

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class OverlapConsistency:
    """Area-weighted RMS over all overlaps, per band, in data units.

    Attributes
    ----------
    mean_diff
        RMS difference of the two images' means over each overlap.
    std_diff
        RMS difference of their standard deviations.
    rmse
        Pixelwise root mean squared difference in overlaps.
    block_mean_diff
        RMS difference of block means in overlaps (the local step's scale; this and
        ``block_std_diff`` are the figures that include the local fields).
    block_std_diff
        RMS difference of within-block standard deviations in overlaps.
    """

    mean_diff: F64
    std_diff: F64
    rmse: F64
    block_mean_diff: F64
    block_std_diff: F64

    def to_dict(self) -> dict[str, Any]:
        """Serialize to plain JSON types."""
        return {
            k: getattr(self, k).tolist() for k in ("mean_diff", "std_diff", "rmse", "block_mean_diff", "block_std_diff")
        }


def overlap_consistency(
    stats: Statistics, fit: GlobalFit | None = None, local: LocalFit | None = None
) -> OverlapConsistency:
    """Overlap consistency of the raw images, or after a global (and local) model.

    Parameters
    ----------
    stats
        Pass-1 statistics.
    fit
        Global model; ``None`` measures the input as it is.
    local
        Local fields; only affect the block figures.

    Returns
    -------
    OverlapConsistency
        Per-band RMS figures (zeros when nothing overlaps).
    """
    nb = stats.n_bands
    gains = fit.gains if fit is not None else np.ones((stats.n_images, nb))
    offsets = fit.offsets if fit is not None else np.zeros((stats.n_images, nb))
    acc = np.zeros((3, nb))
    total = 0.0
    for (i, j), pm in stats.pairs.items():
        ai, aj = gains[i], gains[j]
        dmean = ai * pm.mean_i + offsets[i] - aj * pm.mean_j - offsets[j]
        dstd = np.abs(ai) * pm.std_i - np.abs(aj) * pm.std_j
        var = (ai**2 * pm.m2_i + aj**2 * pm.m2_j - 2 * ai * aj * pm.c_ij) / pm.n
        acc += pm.n * np.stack([dmean**2, dstd**2, dmean**2 + np.maximum(var, 0.0)])
        total += pm.n
    mean_diff, std_diff, rmse = np.sqrt(acc / max(total, 1.0))
    return OverlapConsistency(mean_diff, std_diff, rmse, *_block_diffs(stats, gains, offsets, local))


def _block_diffs(stats: Statistics, gains: F64, offsets: F64, local: LocalFit | None) -> tuple[F64, F64]:
    """Count-weighted RMS of block mean and block std differences over all overlaps, per band."""
    nb = stats.n_bands
    acc = np.zeros((2, nb))
    total = 0.0
    for (i, j), bs in stats.pair_blocks.items():
        n = bs.n.ravel()
        use = n > 0
        sums = bs.sums.reshape(bs.sums.shape[0], -1)[:, use]
        nn = n[use]
        raw_i, raw_j = sums[:nb] / nn, sums[nb : 2 * nb] / nn
        sd_i = np.abs(gains[i])[:, None] * np.sqrt(np.maximum(sums[2 * nb : 3 * nb] / nn - raw_i**2, 0.0))
        sd_j = np.abs(gains[j])[:, None] * np.sqrt(np.maximum(sums[3 * nb : 4 * nb] / nn - raw_j**2, 0.0))
        mi, mj = gains[i][:, None] * raw_i, gains[j][:, None] * raw_j
        if local is not None:
            rows, cols = sums[-2] / nn, sums[-1] / nn
            gi = evaluate_field(local.fields[i], rows, cols, local.blocks, local.frames[i])
            gj = evaluate_field(local.fields[j], rows, cols, local.blocks, local.frames[j])
            mi, mj, sd_i, sd_j = (
                mi * gi + local.shifts[i][:, None],
                mj * gj + local.shifts[j][:, None],
                sd_i * gi,
                sd_j * gj,
            )
        mi += offsets[i][:, None]
        mj += offsets[j][:, None]
        acc += np.stack([((mi - mj) ** 2 * nn).sum(axis=1), ((sd_i - sd_j) ** 2 * nn).sum(axis=1)])
        total += float(nn.sum())
    mean_diff, std_diff = np.sqrt(acc / max(total, 1.0))
    return mean_diff, std_diff


def reference_block_map(stats: Statistics, fit: GlobalFit, local: LocalFit | None = None) -> F64:
    """The reference block map: count-weighted mean of all images' corrected block means.

    Parameters
    ----------
    stats
        Pass-1 statistics (per-image block sums).
    fit, local
        The model; block means are corrected with the field at each block centre.

    Returns
    -------
    numpy.ndarray
        ``(bands, block rows, block cols)`` over the whole block grid; NaN where no image has
        a valid pixel.
    """
    blocks = stats.blocks
    acc = np.zeros((stats.n_bands, blocks.n_rows, blocks.n_cols))
    count = np.zeros((blocks.n_rows, blocks.n_cols))
    for i, bs in enumerate(stats.image_blocks):
        f = bs.frame
        means = bs.sums / np.maximum(bs.n, 1.0)
        corrected = fit.gains[i][:, None, None] * means
        if local is not None:
            rows = (np.arange(f.row0, f.row1, dtype=np.float64) + 0.5) * blocks.block_height
            cols = (np.arange(f.col0, f.col1, dtype=np.float64) + 0.5) * blocks.block_width
            corrected *= evaluate_field_on_lattice(local.fields[i], rows, cols, blocks, local.frames[i])
            corrected += local.shifts[i][:, None, None]
        corrected += fit.offsets[i][:, None, None]
        acc[:, f.row0 : f.row1, f.col0 : f.col1] += corrected * bs.n
        count[f.row0 : f.row1, f.col0 : f.col1] += bs.n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, acc / count, np.nan)


def affine_residual(result: F64, truth: F64) -> tuple[F64, F64]:
    """Per-band RMSE between ``result`` and ``truth`` after one least-squares affine fit.

    Relative normalization without a fixed reference is defined up to one common affine
    map per band; this removes it before comparing.

    Parameters
    ----------
    result, truth
        Co-registered valid pixel values, shape ``(bands, pixels)``.

    Returns
    -------
    rmse, relative
        RMSE per band and the same divided by the truth's standard deviation.
    """
    rmse = np.empty(result.shape[0])
    for b in range(result.shape[0]):
        design = np.stack([result[b], np.ones_like(result[b])], axis=1)
        coef, *_ = np.linalg.lstsq(design, truth[b], rcond=None)
        rmse[b] = float(np.sqrt(np.mean((design @ coef - truth[b]) ** 2)))
    return rmse, rmse / truth.std(axis=1)


@dataclass
class OverlapDifferences:
    """Mergeable per-band sums of pixelwise differences between overlapping images.

    Every pixel valid in both images of a pair counts once per pair (area-weighted over
    all pairs). RMSE and MAE follow exactly; chunks are added independently and merged.
    """

    pixels: NDArray[np.int64]
    abs_sum: F64
    sq_sum: F64

    @classmethod
    def empty(cls, n_bands: int) -> OverlapDifferences:
        """Sums over no pixel."""
        return cls(np.zeros(n_bands, dtype=np.int64), np.zeros(n_bands), np.zeros(n_bands))

    def add(self, xi: F64, vi: NDArray[np.bool_], xj: F64, vj: NDArray[np.bool_]) -> None:
        """Add one pair's co-registered window (values ``(bands, rows, cols)``, masks per band or shared).

        One difference array, made in place (3x faster than masking a difference): pixels not
        valid in both count as 0.
        """
        n_bands = xi.shape[0]
        both = vi & vj
        if both.all():
            d = np.subtract(xi, xj, dtype=np.float64).reshape(n_bands, -1)
            self.pixels += d.shape[1]
        else:
            both = np.broadcast_to(both, xi.shape)
            d = np.subtract(xi, xj, out=np.zeros(xi.shape), where=both).reshape(n_bands, -1)
            self.pixels += both.reshape(n_bands, -1).sum(axis=1)
        self.sq_sum += np.einsum("bp,bp->b", d, d)
        self.abs_sum += np.abs(d, out=d).sum(axis=1)

    def merge(self, other: OverlapDifferences) -> None:
        """Merge the sums of other windows (in place)."""
        self.pixels += other.pixels
        self.abs_sum += other.abs_sum
        self.sq_sum += other.sq_sum

    def to_dict(self) -> dict[str, Any]:
        """``rmse``, ``mae`` per band (``None`` without overlap) and the ``pixels`` compared."""
        n = np.maximum(self.pixels, 1)
        has = self.pixels > 0
        return {
            "rmse": [float(v) if h else None for v, h in zip(np.sqrt(self.sq_sum / n), has, strict=True)],
            "mae": [float(v) if h else None for v, h in zip(self.abs_sum / n, has, strict=True)],
            "pixels": self.pixels.tolist(),
        }
