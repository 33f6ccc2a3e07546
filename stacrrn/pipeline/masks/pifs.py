"""Pseudo-invariant features in pass 1: which pixels of each pair may inform its statistics.

Criteria, combined by intersection (a pixel must pass every one given):

- ``imad``: IR-MAD no-change probability above a threshold (or, where that leaves fewer
  than ``min_share`` of the overlap, its most invariant ``min_share``). The transform and
  the cutoff of each pair are fitted first, on a sample of its overlap (a few windows spread
  over it, a regular lattice of pixels outside the held-out cells), then score every pixel
  in pass 1, so the mask depends on the pixel alone, whatever the chunking.
- ``ndvi``: NDVI and NIR brightness inside :class:`~stacrrn.core.pif.SpectralPifThresholds`
  in both images (needs red and NIR bands and their reflectance scaling).
- vector files (GeoJSON, GeoPackage, GeoParquet): pixels inside any of the include
  polygons; ``exclude`` polygons are always left out.

A share of pixels (whole 16 x 16 cells) is held out of every pair's statistics to validate
the fitted model (:mod:`stacrrn.core.validation`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from stacrrn.core.pif import IrmadModel, fit_irmad, holdout_cells, invariant_cutoff, irmad_invariant, spectral_invariant
from stacrrn.core.statistics import F64, Mask, PairMask
from stacrrn.io.vectors import VectorMask
from stacrrn.options import PifOptions
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.pif_options import PifSetup
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.types import Box

SAMPLE_PIXELS = 60_000
"""Pixels of each pair's overlap used to fit its IR-MAD transform (at most)."""

SAMPLE_WINDOW = 512
"""Edge (common-grid pixels) of the windows read to sample a pair's overlap."""


def candidate_pairs(plan: Plan) -> list[tuple[int, int]]:
    """Pairs of the plan's graph whose footprints meet."""
    n = len(plan.footprints)
    return [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if (plan.pairs is None or (i, j) in plan.pairs) and not plan.footprints[i].intersect(plan.footprints[j]).empty
    ]


def sample_windows(overlap: Box, count: int, size: int = SAMPLE_WINDOW) -> list[Box]:
    """Up to ``count`` windows of ``size`` pixels spread evenly over ``overlap``.

    They depend on the overlap alone (never on the chunking), so the fitted transforms,
    and hence pass 1, are the same for any chunk size.
    """
    tiles = [
        Box(r, c, min(r + size, overlap.row1), min(c + size, overlap.col1))
        for r in range(overlap.row0, overlap.row1, size)
        for c in range(overlap.col0, overlap.col1, size)
    ]
    picks = sorted({round(float(k)) for k in np.linspace(0, len(tiles) - 1, min(count, len(tiles)))})
    return [tiles[k] for k in picks]


def sample_grid(box: Box, stride: int) -> Mask:
    """Pixels of ``box`` on the lattice of every ``stride``-th grid row and column."""
    rows = (np.arange(box.row0, box.row1) % stride) == 0
    cols = (np.arange(box.col0, box.col1) % stride) == 0
    return np.asarray(rows[:, None] & cols[None, :])


def _fit_pair(plan: Plan, options: PifOptions, pair: tuple[int, int]) -> tuple[IrmadModel, float] | str:
    """IR-MAD transform and cutoff of one pair from its sample windows, or why it cannot be fitted."""
    i, j = pair
    windows = sample_windows(plan.footprints[i].intersect(plan.footprints[j]), max(1, options.samples))
    stride = max(1, math.ceil(math.sqrt(sum(w.height * w.width for w in windows) / SAMPLE_PIXELS)))
    xs, ys = [], []
    for window in windows:
        layers = plan.read_chunk(window, [i, j])
        (xi, vi), (xj, vj) = layers[i], layers[j]
        use = vi & vj & sample_grid(window, stride)
        if options.holdout_share > 0:  # held-out pixels stay out of every fit
            use &= ~holdout_cells(window, options.holdout_share)
        xs.append(xi[:, use])
        ys.append(xj[:, use])
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    names = f"{plan.names[i]} and {plan.names[j]}"
    try:
        model = fit_irmad(x, y)
    except np.linalg.LinAlgError:
        return f"IR-MAD cannot be fitted to {names} (a constant or duplicated band?); their overlap is not used"
    except ValueError:
        return f"{names} share only {x.shape[1]} valid sampled pixels, too few for IR-MAD; their overlap is not used"
    return model, invariant_cutoff(model, x, y, options.threshold, options.min_share)


Transforms = dict[tuple[int, int], tuple[IrmadModel, float]]
"""IR-MAD transform and chi-square cutoff of each pair."""


def fit_pair_transforms(
    plan: Plan, options: PifOptions, workers: Workers = 1, progress: Progress = no_progress
) -> tuple[Transforms, list[str]]:
    """Fit IR-MAD and its PIF cutoff for every pair of the plan on samples of its overlap.

    Each pair reads up to ``options.samples`` windows of its overlap and keeps at most
    :data:`SAMPLE_PIXELS` pixels on a regular lattice, outside the held-out cells; pairs
    are fitted one by one (``workers`` at a time), so memory stays bounded for any number
    of pairs.

    Returns
    -------
    dict, list of str
        The transforms with their cutoffs, and warnings for pairs that cannot be fitted
        (they get no PIF).
    """
    pairs = candidate_pairs(plan)
    models: Transforms = {}
    warnings = []
    progress("pif fit", 0, len(pairs))
    fits = imap_bounded(lambda pair: _fit_pair(plan, options, pair), pairs, workers)
    for done, (pair, fitted) in enumerate(zip(pairs, fits, strict=True), start=1):
        if isinstance(fitted, str):
            warnings.append(fitted)
        else:
            models[pair] = fitted
        progress("pif fit", done, len(pairs))
    return models, warnings


def pair_mask(plan: Plan, setup: PifSetup, transforms: Transforms) -> PairMask:
    """The pass-1 pair mask of ``setup`` (intersection of its criteria)."""
    options = setup.options
    include = [VectorMask.load(p, plan.grid) for p in options.vectors]
    exclude = [VectorMask.load(p, plan.grid) for p in options.exclude]
    roles = None
    if "ndvi" in options.methods and setup.bands is not None:
        roles = (setup.bands.find("red", "--pif ndvi"), setup.bands.find("nir", "--pif ndvi"))

    def stable(x: F64) -> Mask:
        assert roles is not None and setup.bands is not None
        rho = setup.bands.reflectance(x[list(roles)], "--pif ndvi")
        return spectral_invariant(rho[0], rho[1], options.spectral)

    @functools.lru_cache(maxsize=16)  # every pair of a chunk shares the chunk's polygons
    def polygons(box: Box) -> Mask:
        keep = np.ones((box.height, box.width), dtype=bool)
        if include:
            keep &= np.logical_or.reduce([v.inside(box) for v in include])
        for v in exclude:
            keep &= ~v.inside(box)
        return keep

    def mask(box: Box, i: int, j: int, xi: F64, xj: F64) -> Mask:
        keep = polygons(box).copy() if include or exclude else np.ones(xi.shape[1:], dtype=bool)
        if roles is not None:
            keep &= stable(xi) & stable(xj)
        if "imad" in options.methods:
            fitted = transforms.get((i, j))
            keep &= False if fitted is None else irmad_invariant(fitted[0], xi, xj, fitted[1])
        return keep

    return mask


def prepare_pair_mask(
    plan: Plan, setup: PifSetup, workers: Workers = 1, progress: Progress = no_progress
) -> tuple[PairMask | None, list[str]]:
    """Fit what the criteria need (IR-MAD transforms) and return the pair mask and warnings."""
    setup.check()
    if not setup.options.methods and not setup.options.exclude:
        return None, []
    transforms, warnings = (
        fit_pair_transforms(plan, setup.options, workers, progress) if "imad" in setup.options.methods else ({}, [])
    )
    return pair_mask(plan, setup, transforms), warnings
