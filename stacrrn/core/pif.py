"""Pseudo-invariant features: IR-MAD no-change probability, NDVI/brightness thresholds, holdout.

IR-MAD (iteratively reweighted multivariate alteration detection; Nielsen 2007, IEEE TIP
16(2):463-478; Canty & Nielsen 2008, RSE 112:1025-1036) finds the linear combinations of two
images' bands that are maximally correlated (canonical correlation analysis), takes their
differences (the MAD variates), and reweights every pixel by its probability of no change
(the chi-square tail of the standardized MAD variates) until the correlations settle.
Invariant to affine changes of either image's bands, so it needs no prior normalization.

The fit runs on any sample of pixels (e.g. a strided subsample of the overlap); the fitted
transform then scores every pixel chunk by chunk (:func:`no_change_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, special

from stacrrn.core.settings import SpectralPifThresholds
from stacrrn.errors import ArgumentError
from stacrrn.types import Box

F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]

HOLDOUT_CELL = 16
"""Edge (common-grid pixels) of the square cells that are held out whole for validation."""


@dataclass(frozen=True)
class IrmadModel:
    """A fitted IR-MAD transform between two images' bands.

    Attributes
    ----------
    mean_x, mean_y
        Weighted band means (no-change weights of the last iteration).
    a, b
        Canonical vectors, ``(bands, bands)``: column ``i`` gives the ``i``-th variate.
    rho
        Canonical correlations, ascending (the last MAD variate is the most invariant).
    iterations
        Iterations run.
    """

    mean_x: F64
    mean_y: F64
    a: F64
    b: F64
    rho: F64
    iterations: int

    def chi_square(self, x: F64, y: F64) -> F64:
        """Sum of squared standardized MAD variates per pixel (``x``, ``y``: ``(bands, pixels)``)."""
        u = self.a.T @ (x - self.mean_x[:, None])
        v = self.b.T @ (y - self.mean_y[:, None])
        var = np.maximum(2.0 * (1.0 - self.rho), 1e-12)
        return np.asarray(np.sum((u - v) ** 2 / var[:, None], axis=0), dtype=np.float64)


def no_change_probability(model: IrmadModel, x: F64, y: F64) -> F64:
    """Probability of no change per pixel: the chi-square (``bands`` d.o.f.) tail of the MAD statistic."""
    return np.asarray(special.chdtrc(x.shape[0], model.chi_square(x, y)), dtype=np.float64)


def _weighted_covariance(z: F64, w: F64) -> tuple[F64, F64]:
    mean = z @ w / w.sum()
    d = z - mean[:, None]
    return mean, (d * w) @ d.T / w.sum()


def fit_irmad(x: F64, y: F64, max_iter: int = 50, tol: float = 1e-6) -> IrmadModel:
    """Fit IR-MAD between two co-registered images.

    Parameters
    ----------
    x, y
        Pixel values ``(bands, pixels)`` of the two images at the same locations (valid in both).
    max_iter
        Maximum reweighting iterations.
    tol
        Stop when no canonical correlation moves by more than this.

    Returns
    -------
    IrmadModel
        The transform; score pixels with :func:`no_change_probability`.

    Raises
    ------
    ArgumentError
        For mismatched shapes or fewer pixels than ``4 * bands``.
    """
    p, n = x.shape
    if y.shape != x.shape:
        raise ArgumentError(f"IR-MAD needs the same bands and pixels in both images, got {x.shape} and {y.shape}")
    if n < 4 * p:
        raise ArgumentError(f"IR-MAD needs at least {4 * p} pixels, got {n}")
    z = np.vstack([x, y]).astype(np.float64)
    w = np.ones(n)
    rho = np.zeros(p)
    for iteration in range(1, max_iter + 1):
        mean, s = _weighted_covariance(z, w)
        s11, s22, s12 = s[:p, :p], s[p:, p:], s[:p, p:]
        s22_inv_s21 = linalg.solve(s22, s12.T, assume_a="pos")
        # s12 s22^-1 s21 a = rho^2 s11 a, eigenvalues ascending, a^T s11 a = 1
        eig, a = linalg.eigh(s12 @ s22_inv_s21, s11)
        new_rho = np.sqrt(np.clip(eig, 0.0, 1.0))
        b = s22_inv_s21 @ a / np.maximum(new_rho, 1e-12)
        b /= np.sqrt(np.einsum("ij,jk,ki->i", b.T, s22, b))[None, :]
        model = IrmadModel(mean[:p], mean[p:], a, b, new_rho, iteration)
        w = no_change_probability(model, z[:p], z[p:])
        done = np.max(np.abs(new_rho - rho)) < tol
        rho = new_rho
        if done:
            break
    return model


def ndvi(red: F64, nir: F64) -> F64:
    """Normalized difference vegetation index (NaN where ``red + nir`` is 0)."""
    total = red + nir
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (nir - red) / total, np.nan)


def invariant_cutoff(model: IrmadModel, x: F64, y: F64, threshold: float, min_share: float = 0.0) -> float:
    """Largest MAD chi-square statistic of a pseudo-invariant pixel.

    That of no-change probability ``threshold``, raised where needed so that at least
    ``min_share`` of the sample ``x``, ``y`` (``(bands, pixels)``) qualifies: on real scenes
    the statistic of unchanged pixels is often far above its chi-square law (the reweighting
    concentrates on the most invariant pixels, and seasons change something everywhere), and
    a fixed probability can leave a handful of PIFs where thousands are needed.
    """
    by_probability = float(special.chdtri(x.shape[0], threshold))
    if min_share <= 0 or x.shape[1] == 0:
        return by_probability
    return max(by_probability, float(np.quantile(model.chi_square(x, y), min_share)))


def irmad_invariant(model: IrmadModel, x: F64, y: F64, cutoff: float) -> Mask:
    """Pseudo-invariant pixels of a pair: MAD chi-square statistic at most ``cutoff``.

    Parameters
    ----------
    model
        IR-MAD transform fitted on a sample of the pair's overlap.
    x, y
        Values ``(bands, rows, cols)`` of the two images on the same pixels.
    cutoff
        From :func:`invariant_cutoff`. With no-change probability threshold ``t`` alone, a
        share ``1 - t`` of truly unchanged pixels (the most invariant) is kept, and very few
        changed ones.
    """
    shape = x.shape[1:]
    chi = model.chi_square(x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1))
    with np.errstate(invalid="ignore"):
        return (chi <= cutoff).reshape(shape)


def spectral_invariant(red: F64, nir: F64, limits: SpectralPifThresholds | None = None) -> Mask:
    """Pixels whose NDVI and NIR reflectance fall inside ``limits`` (NaN: not invariant)."""
    t = limits or SpectralPifThresholds()
    v = ndvi(red, nir)
    with np.errstate(invalid="ignore"):
        return (v >= t.ndvi_min) & (v <= t.ndvi_max) & (nir >= t.nir_min) & (nir <= t.nir_max)


def _mix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finalizer: a fast, well-mixed integer hash."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def holdout_cells(box: Box, share: float, cell: int = HOLDOUT_CELL, seed: int = 0) -> Mask:
    """Pixels of ``box`` held out for validation: whole ``cell`` x ``cell`` cells of the grid.

    A cell is held out when a hash of its grid position (and ``seed``) falls below
    ``share``, so the pattern depends on the pixel's position alone, never on the chunking,
    and held-out pixels are spatially separated from most training pixels.
    """
    if share <= 0:
        return np.zeros((box.height, box.width), dtype=bool)
    rows = (np.arange(box.row0, box.row1) // cell).astype(np.uint64)
    cols = (np.arange(box.col0, box.col1) // cell).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = _mix(rows[:, None] * np.uint64(0x9E3779B97F4A7C15) + cols[None, :] + np.uint64(seed))
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share
