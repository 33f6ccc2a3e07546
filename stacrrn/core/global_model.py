"""Global step (Yu et al. 2017): one gain and offset per image and band, jointly.

For each band, unknowns ``a_i`` (gain) and ``b_i`` (offset). Every overlap ``(i, j)``
contributes a *mean row* ``a_i mu_ij + b_i - a_j mu_ji - b_j = 0`` and a *spread row*
``a_i sigma_ij - a_j sigma_ji = 0``, weighted by ``sqrt(n_ij)`` and divided by the
band's pooled standard deviation so that the system is unit-free.

Both row types are homogeneous: shrinking every gain towards zero shrinks every
residual. Tools that hold the images with soft anchor rows therefore trade contrast
for consistency ("contrast collapse"). Here the gauge is fixed *exactly*: in every
connected component of the overlap graph, hard equality constraints keep the mean of
the anchor images' corrected means and the mean of their corrected standard deviations
equal to the originals. The anchors are the reference images in that component, or all
of its images when it holds none. With one reference image this makes it the identity.
The constrained least-squares problem is solved through its sparse KKT system.

The spread row says that ``x_j ~ s_ij x_i + t`` with the reduced-major-axis slope
``s_ij = sigma_ji / sigma_ij`` (``a_i = s_ij a_j``). The ``orthogonal`` estimator uses the
orthogonal (total least squares) regression slope instead, the relation Canty & Nielsen
(2008) fit on IR-MAD invariant pixels: the maximum-likelihood line when both images
carry noise of equal variance. Both are symmetric in ``i`` and ``j``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from stacrrn.core.moments import ImageMoments, PairMoments
from stacrrn.core.settings import ESTIMATORS
from stacrrn.errors import ArgumentError

F64 = NDArray[np.float64]


MIN_ORTHOGONAL_CORRELATION = 0.3
"""Below this correlation a pair's orthogonal regression line is not a radiometric relation."""


def orthogonal_slope(pm: PairMoments) -> F64:
    """Slope of the orthogonal regression of ``x_j`` on ``x_i`` per band.

    Falls back to the ratio of standard deviations where the pair's correlation is below
    :data:`MIN_ORTHOGONAL_CORRELATION` (the orthogonal line then follows whichever image
    varies more, not the radiometric relation).
    """
    vi, vj, c = pm.m2_i, pm.m2_j, pm.c_ij
    ratio = pm.std_j / np.maximum(pm.std_i, 1e-300)
    root = np.sqrt((vj - vi) ** 2 + 4 * c * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = c / np.sqrt(vi * vj)
        # two forms of the same root, each free of cancellation on its side
        slope = np.where(vj >= vi, (vj - vi + root) / (2 * c), 2 * c / (vi - vj + root))
    return np.where(correlation >= MIN_ORTHOGONAL_CORRELATION, slope, ratio)


@dataclass(frozen=True)
class GlobalFit:
    """Result of the global step.

    Attributes
    ----------
    gains, offsets
        Arrays of shape ``(images, bands)``: corrected = gain * value + offset.
    components
        Connected components of the overlap graph (lists of image indices).
    anchors
        For each component, the image indices whose central tendency it keeps.
    isolated
        Images that overlap no other image; they keep the identity.
    unfitted
        Bands (0-based) that no overlap describes: constant over some overlap in an image
        (an empty probability layer, a saturated band) or a singular system. Every image keeps
        the identity there.
    """

    gains: F64
    offsets: F64
    components: list[list[int]]
    anchors: list[list[int]]
    isolated: list[int]
    unfitted: list[int] = field(default_factory=list)


def overlap_components(
    n_images: int, pairs: Mapping[tuple[int, int], PairMoments], min_overlap: int
) -> list[list[int]]:
    """Connected components of the graph whose edges are overlaps of at least ``min_overlap`` pixels."""
    edges = [(i, j) for (i, j), pm in pairs.items() if pm.n >= min_overlap]
    rows = [i for i, _ in edges]
    cols = [j for _, j in edges]
    graph = sp.coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n_images, n_images))
    _, labels = connected_components(graph, directed=False)
    comps: dict[int, list[int]] = {}
    for idx, lab in enumerate(labels):
        comps.setdefault(int(lab), []).append(idx)
    return sorted(comps.values(), key=lambda c: c[0])


def _band_system(
    b: int,
    images: Sequence[ImageMoments],
    pairs: Mapping[tuple[int, int], PairMoments],
    min_overlap: int,
    anchors: list[list[int]],
    estimator: str = "spread",
) -> tuple[sp.csr_matrix, sp.csr_matrix, F64, float]:
    """Rows ``A`` (overlaps), constraints ``C x = d`` and the band scale for band ``b``.

    Unknowns are ``[a_0..a_{N-1}, b_0/s..b_{N-1}/s]`` with ``s`` the pooled std.
    """
    n = len(images)
    mu = np.array([m.mean[b] for m in images])
    sd = np.array([m.std[b] for m in images])
    counted = np.array([m.n > 0 for m in images])
    s = float(np.sqrt(np.mean(sd[counted] ** 2))) if counted.any() else 1.0
    s = s if s > 0 else 1.0
    used = {k: pm for k, pm in pairs.items() if pm.n >= min_overlap}
    n_max = max((pm.n for pm in used.values()), default=1)
    r, c, v = [], [], []
    for row, ((i, j), pm) in enumerate(sorted(used.items())):
        w = np.sqrt(pm.n / n_max)
        spread_j = pm.std_j[b] if estimator == "spread" else orthogonal_slope(pm)[b] * pm.std_i[b]
        ws = w if pm.m2_i[b] > 0 and pm.m2_j[b] > 0 else 0.0  # a side constant over the overlap: no spread row
        mrow, srow = 2 * row, 2 * row + 1
        r += [mrow, mrow, mrow, mrow, srow, srow]
        c += [i, n + i, j, n + j, i, j]
        v += [
            w * pm.mean_i[b] / s,
            w,
            -w * pm.mean_j[b] / s,
            -w,
            ws * pm.std_i[b] / s,
            -ws * spread_j / s,
        ]
    a_mat = sp.csr_matrix((v, (r, c)), shape=(2 * len(used), 2 * n))
    cr, cc, cv, d = [], [], [], []
    for k, group in enumerate(anchors):
        for i in group:
            cr += [2 * k, 2 * k + 1, 2 * k + 1]
            cc += [i, i, n + i]
            cv += [sd[i] / s, mu[i] / s, 1.0]
        d += [float(sd[group].sum() / s), float(mu[group].sum() / s)]
    c_mat = sp.csr_matrix((cv, (cr, cc)), shape=(2 * len(anchors), 2 * n))
    return a_mat, c_mat, np.asarray(d), s


def solve_global(
    images: Sequence[ImageMoments],
    pairs: Mapping[tuple[int, int], PairMoments],
    references: Sequence[int] | None = None,
    min_overlap: int = 64,
    estimator: str = "spread",
) -> GlobalFit:
    """Fit one gain and offset per image and band from overlap moments.

    Parameters
    ----------
    images
        Moments of each image over all its valid pixels.
    pairs
        Joint moments of overlapping images, keyed ``(i, j)`` with ``i < j``.
    references
        Indices of the reference images whose central tendency the result keeps.
        ``None`` (default) uses all images: normalization towards the central tendency.
    min_overlap
        Overlaps with fewer pixels are ignored.
    estimator
        Relative gain of each pair: ``spread`` (ratio of standard deviations) or
        ``orthogonal`` (orthogonal regression), see :data:`ESTIMATORS`.

    Returns
    -------
    GlobalFit
        Gains and offsets, with the overlap graph's components and anchors.

    Raises
    ------
    ArgumentError
        For an unknown estimator.
    """
    if estimator not in ESTIMATORS:
        raise ArgumentError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    n = len(images)
    n_bands = images[0].mean.shape[0]
    ref_set = set(range(n)) if references is None else set(references)
    components = overlap_components(n, pairs, min_overlap)
    isolated = [c[0] for c in components if len(c) == 1]
    anchors = [sorted(ref_set.intersection(c)) or list(c) for c in components]
    gains = np.ones((n, n_bands))
    offsets = np.zeros((n, n_bands))
    unfitted = flat_bands(pairs, min_overlap, n_bands)
    for b in (b for b in range(n_bands) if b not in unfitted):
        a_mat, c_mat, d, s = _band_system(b, images, pairs, min_overlap, anchors, estimator)
        h = (a_mat.T @ a_mat).tocsc()
        eps = 1e-9 * max(float(h.diagonal().mean()), 1.0)
        x0 = np.concatenate([np.ones(n), np.zeros(n)])
        kkt = sp.bmat([[h + eps * sp.identity(2 * n), c_mat.T], [c_mat, None]], format="csc")
        rhs = np.concatenate([eps * x0, d])
        with np.errstate(all="ignore"):
            sol = spla.spsolve(kkt, rhs)
        if not np.all(np.isfinite(sol)):
            unfitted.append(b)
            continue
        gains[:, b] = sol[:n]
        offsets[:, b] = sol[n : 2 * n] * s
    return GlobalFit(gains, offsets, components, anchors, isolated, sorted(unfitted))


def flat_bands(pairs: Mapping[tuple[int, int], PairMoments], min_overlap: int, n_bands: int) -> list[int]:
    """Bands that vary in no usable overlap (in both images at once): no spread relates any pair there."""
    used = [pm for pm in pairs.values() if pm.n >= min_overlap]
    return [b for b in range(n_bands) if not any(pm.m2_i[b] > 0 and pm.m2_j[b] > 0 for pm in used)]
