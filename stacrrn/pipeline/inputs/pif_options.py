"""PIF options bound to the band roles they need (the options themselves: :class:`stacrrn.options.PifOptions`).

The criteria are applied by :mod:`stacrrn.pipeline.masks.pifs`; this type sits below it so
that a :class:`~stacrrn.pipeline.inputs.plan.Plan` can carry it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stacrrn.errors import InputError
from stacrrn.io.storage import object_identity
from stacrrn.options import PIF_KINDS, PifOptions
from stacrrn.pipeline.inputs.spectral import SpectralBands


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

    def describe(self) -> dict[str, Any]:
        """JSON description (with the vector files' identities), for caches and the model."""
        return {
            "methods": [
                m if m in PIF_KINDS else {"include": m, "id": object_identity(m)} for m in self.options.methods
            ],
            "exclude": [{"path": p, "id": object_identity(p)} for p in self.options.exclude],
            "threshold": self.options.threshold if "imad" in self.options.methods else None,
            "min_share": self.options.min_share if "imad" in self.options.methods else None,
            "holdout": self.options.holdout_share,
            "spectral": asdict(self.options.spectral) if "ndvi" in self.options.methods else None,
            "samples": self.options.samples if "imad" in self.options.methods else None,
        }
