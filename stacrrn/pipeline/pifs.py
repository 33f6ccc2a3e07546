"""Pseudo-invariant features in pass 1: which pixels of each pair may inform its statistics.

Criteria, combined by intersection (a pixel must pass every one given):

- ``imad``: IR-MAD no-change probability above a threshold (or, where that leaves fewer
  than ``min_share`` of the overlap, its most invariant ``min_share``). The transform and
  the cutoff of each pair are fitted first, on a sample of its overlap (a few chunks spread
  over it, every pixel or a stride), then score every pixel in pass 1, so the mask depends
  on the pixel alone.
- ``ndvi``: NDVI and NIR brightness inside :class:`~stacrrn.core.pif.SpectralPifThresholds`
  in both images (needs red and NIR bands and their reflectance scaling).
- vector files (GeoJSON, GeoPackage, GeoParquet): pixels inside any of the include
  polygons; ``exclude`` polygons are always left out.

A share of pixels (whole 16 x 16 cells) is held out of every pair's statistics to validate
the fitted model (:mod:`stacrrn.core.validation`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stacrrn.core.pif import (
    IrmadModel,
    SpectralPifThresholds,
    fit_irmad,
    invariant_cutoff,
    irmad_invariant,
    spectral_invariant,
)
from stacrrn.core.statistics import F64, Mask, PairMask
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.storage import object_identity
from stacrrn.io.vectors import VectorMask
from stacrrn.pipeline.parallel import imap_bounded
from stacrrn.pipeline.plan import Plan
from stacrrn.pipeline.progress import Progress, no_progress
from stacrrn.pipeline.spectral import SpectralBands
from stacrrn.types import Box

PIF_KINDS = ("imad", "ndvi")
"""Named PIF criteria; any other ``--pif`` value is a vector file of include polygons."""

DEFAULT_HOLDOUT = 0.2
"""Share of pixels held out for validation when PIFs are used."""

SAMPLE_PIXELS = 60_000
"""Pixels of each pair's overlap used to fit its IR-MAD transform (at most)."""


@dataclass(frozen=True)
class PifOptions:
    """How pass 1 selects pseudo-invariant pixels.

    Attributes
    ----------
    methods
        ``imad``, ``ndvi`` and/or paths of vector files with include polygons.
    exclude
        Paths of vector files whose polygons are never used.
    threshold
        Minimum IR-MAD no-change probability.
    min_share
        IR-MAD keeps at least this share of each overlap (its most invariant pixels).
    holdout
        Share of pixels held out for validation (default 0.2 with PIFs, else 0).
    spectral
        NDVI/NIR limits of the ``ndvi`` criterion.
    samples
        Chunks sampled per pair to fit IR-MAD.
    """

    methods: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    threshold: float = 0.5
    holdout: float | None = None
    min_share: float = 0.1
    spectral: SpectralPifThresholds = field(default_factory=SpectralPifThresholds)
    samples: int = 4

    @classmethod
    def parse(
        cls,
        values: Sequence[str],
        exclude: Sequence[str] = (),
        threshold: float = 0.5,
        holdout: float | None = None,
        min_share: float = 0.1,
    ) -> PifOptions | None:
        """Options from CLI values (``none`` or nothing: no PIF selection, unless holdout/exclude ask).

        Raises
        ------
        ParameterError
            For a value that is neither a criterion nor an existing file, or bad numbers.
        """
        methods = tuple(v for v in values if v != "none")
        if "none" in values and methods:
            raise ParameterError(f"--pif none cannot be combined with --pif {' '.join(methods)}")
        for v in (*methods, *exclude):
            if v not in PIF_KINDS and not os.path.isfile(v):
                raise ParameterError(
                    f"--pif/--exclude {v!r} is neither {', '.join(PIF_KINDS)}, none, nor an existing vector file"
                )
        if not 0.0 <= threshold < 1.0:
            raise ParameterError(f"--pif-threshold must be in [0, 1), got {threshold}")
        if not 0.0 <= min_share < 1.0:
            raise ParameterError(f"--pif-min-share must be in [0, 1), got {min_share}")
        if holdout is not None and not 0.0 <= holdout < 1.0:
            raise ParameterError(f"--holdout must be in [0, 1), got {holdout}")
        if not methods and not exclude and not holdout:
            return None
        return cls(tuple(dict.fromkeys(methods)), tuple(exclude), threshold, holdout, min_share=min_share)

    @property
    def vectors(self) -> list[str]:
        """Include vector files."""
        return [m for m in self.methods if m not in PIF_KINDS]

    @property
    def holdout_share(self) -> float:
        """Share of pixels held out for validation."""
        if self.holdout is not None:
            return self.holdout
        return DEFAULT_HOLDOUT if self.methods or self.exclude else 0.0

    def describe(self) -> dict[str, Any]:
        """JSON description (with the vector files' identities), for caches and the model."""
        return {
            "methods": [m if m in PIF_KINDS else {"include": m, "id": object_identity(m)} for m in self.methods],
            "exclude": [{"path": p, "id": object_identity(p)} for p in self.exclude],
            "threshold": self.threshold if "imad" in self.methods else None,
            "min_share": self.min_share if "imad" in self.methods else None,
            "holdout": self.holdout_share,
            "spectral": asdict(self.spectral) if "ndvi" in self.methods else None,
            "samples": self.samples if "imad" in self.methods else None,
        }


@dataclass(frozen=True)
class PifSetup:
    """PIF options with the band roles the ``ndvi`` criterion needs."""

    options: PifOptions
    bands: SpectralBands | None = None

    def check(self) -> None:
        """Fail before pass 1 if a criterion cannot work on these bands."""
        if "ndvi" in self.options.methods:
            if self.bands is None:
                raise InputError("--pif ndvi needs band names (local files: --band-names)")
            self.bands.check(("red", "nir"), "--pif ndvi")


def candidate_pairs(plan: Plan) -> list[tuple[int, int]]:
    """Pairs of the plan's graph whose footprints meet."""
    n = len(plan.footprints)
    return [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if (plan.pairs is None or (i, j) in plan.pairs) and not plan.footprints[i].intersect(plan.footprints[j]).empty
    ]


def _chunks_over(plan: Plan, box: Box) -> list[Box]:
    """The plan's chunks that meet ``box`` (chunks tile the grid in squares from its origin)."""
    size = max(max(c.height, c.width) for c in plan.chunks)
    height, width = plan.grid.height, plan.grid.width
    return [
        Box(r, c, min(r + size, height), min(c + size, width))
        for r in range(box.row0 // size * size, box.row1, size)
        for c in range(box.col0 // size * size, box.col1, size)
    ]


def _sample_chunks(plan: Plan, pairs: list[tuple[int, int]], per_pair: int) -> dict[Box, list[tuple[int, int]]]:
    """Up to ``per_pair`` chunks spread over each pair's overlap -> pairs sampled there."""
    out: dict[Box, list[tuple[int, int]]] = {}
    for i, j in pairs:
        inside = _chunks_over(plan, plan.footprints[i].intersect(plan.footprints[j]))
        picks = sorted({round(float(k)) for k in np.linspace(0, len(inside) - 1, min(per_pair, len(inside)))})
        for k in picks:
            out.setdefault(inside[k], []).append((i, j))
    return out


def _pair_sample(xi: F64, xj: F64, both: Mask, cap: int) -> tuple[F64, F64]:
    idx = np.flatnonzero(both.ravel())
    idx = idx[:: max(1, idx.size // cap)]
    return xi.reshape(xi.shape[0], -1)[:, idx], xj.reshape(xj.shape[0], -1)[:, idx]


Transforms = dict[tuple[int, int], tuple[IrmadModel, float]]
"""IR-MAD transform and chi-square cutoff of each pair."""


def fit_pair_transforms(
    plan: Plan, options: PifOptions, workers: int = 1, progress: Progress = no_progress
) -> tuple[Transforms, list[str]]:
    """Fit IR-MAD and its PIF cutoff for every pair of the plan on samples of its overlap.

    Returns
    -------
    dict, list of str
        The transforms with their cutoffs, and warnings for pairs too small to fit (they
        get no PIF).
    """
    pairs = candidate_pairs(plan)
    chunks = _sample_chunks(plan, pairs, max(1, options.samples))
    cap = SAMPLE_PIXELS // max(1, options.samples)

    def task(item: tuple[Box, list[tuple[int, int]]]) -> dict[tuple[int, int], tuple[F64, F64]]:
        box, sampled = item
        layers = plan.read_chunk(box, sorted({k for p in sampled for k in p}))
        out = {}
        for i, j in sampled:
            (xi, vi), (xj, vj) = layers[i], layers[j]
            out[(i, j)] = _pair_sample(xi, xj, vi & vj, cap)
        return out

    samples: dict[tuple[int, int], list[tuple[F64, F64]]] = {}
    progress("pif samples", 0, len(chunks))
    for done, result in enumerate(imap_bounded(task, list(chunks.items()), workers), start=1):
        for key, sample in result.items():
            samples.setdefault(key, []).append(sample)
        progress("pif samples", done, len(chunks))
    models: Transforms = {}
    warnings = []
    for key in pairs:
        x = np.concatenate([s[0] for s in samples.get(key, [])], axis=1) if key in samples else np.zeros((1, 0))
        y = np.concatenate([s[1] for s in samples.get(key, [])], axis=1) if key in samples else np.zeros((1, 0))
        try:
            model = fit_irmad(x, y)
            models[key] = model, invariant_cutoff(model, x, y, options.threshold, options.min_share)
        except ValueError:
            i, j = key
            warnings.append(
                f"{plan.names[i]} and {plan.names[j]} share only {x.shape[1]} valid sampled pixels, "
                "too few for IR-MAD; their overlap is not used"
            )
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

    def mask(box: Box, i: int, j: int, xi: F64, xj: F64) -> Mask:
        keep = np.ones(xi.shape[1:], dtype=bool)
        if include:
            keep &= np.logical_or.reduce([v.inside(box) for v in include])
        for v in exclude:
            keep &= ~v.inside(box)
        if roles is not None:
            keep &= stable(xi) & stable(xj)
        if "imad" in options.methods:
            fitted = transforms.get((i, j))
            keep &= False if fitted is None else irmad_invariant(fitted[0], xi, xj, fitted[1])
        return keep

    return mask


def prepare_pair_mask(
    plan: Plan, setup: PifSetup, workers: int = 1, progress: Progress = no_progress
) -> tuple[PairMask | None, list[str]]:
    """Fit what the criteria need (IR-MAD transforms) and return the pair mask and warnings."""
    setup.check()
    if not setup.options.methods and not setup.options.exclude:
        return None, []
    transforms, warnings = (
        fit_pair_transforms(plan, setup.options, workers, progress) if "imad" in setup.options.methods else ({}, [])
    )
    return pair_mask(plan, setup, transforms), warnings
