"""Options of the pseudo-invariant feature (PIF) selection, and the band roles it needs.

The criteria themselves are applied by :mod:`stacrrn.pipeline.masks.pifs`; these types sit
below it so that a :class:`~stacrrn.pipeline.inputs.plan.Plan` can carry them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stacrrn.core.pif import SpectralPifThresholds
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.storage import object_identity
from stacrrn.pipeline.inputs.spectral import SpectralBands

PIF_KINDS = ("imad", "ndvi")
"""Named PIF criteria; any other ``--pif`` value is a vector file of include polygons."""

DEFAULT_HOLDOUT = 0.2
"""Share of pixels held out for validation when PIFs are used."""


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
        Windows of :data:`~stacrrn.pipeline.masks.pifs.SAMPLE_WINDOW` pixels read per pair to fit IR-MAD.
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
