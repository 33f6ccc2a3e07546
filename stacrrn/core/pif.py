"""Pseudo-invariant features: IR-MAD no-change probability and NDVI/brightness thresholds.

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
from scipy import linalg, stats

F64 = NDArray[np.float64]


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
    return np.asarray(stats.chi2.sf(model.chi_square(x, y), df=x.shape[0]), dtype=np.float64)


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
    ValueError
        For mismatched shapes or fewer pixels than ``4 * bands``.
    """
    p, n = x.shape
    if y.shape != x.shape:
        raise ValueError(f"IR-MAD needs the same bands and pixels in both images, got {x.shape} and {y.shape}")
    if n < 4 * p:
        raise ValueError(f"IR-MAD needs at least {4 * p} pixels, got {n}")
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
