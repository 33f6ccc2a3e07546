"""The fitted normalization model: a small, JSON-serializable record of a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.local_model import LocalFit
from stacrrn.types import Grid

MODEL_VERSION = 1

"""Registered normalization methods; the CLI builds its choices from this tuple."""


@dataclass(frozen=True)
class ImageRef:
    """Name and location of one input image."""

    name: str
    path: str


@dataclass(frozen=True)
class RRNModel:
    """Everything needed to apply (or audit) a normalization.

    Attributes
    ----------
    method
        One of :data:`METHODS`.
    images
        The inputs, in model order.
    bands
        1-based band indexes used from every input.
    grid
        The common grid the statistics were computed on.
    references
        Indices of reference images (empty: all images' central tendency).
    global_fit
        Gains and offsets (identity for ``method="local"``).
    local_fit
        Local fields, or ``None`` for ``method="global"``.
    quality
        Overlap consistency before and after, as plain JSON data.
    """

    method: str
    images: list[ImageRef]
    bands: list[int]
    grid: Grid
    references: list[int]
    global_fit: GlobalFit
    local_fit: LocalFit | None
    quality: dict[str, Any] = field(default_factory=dict)

    def index(self, name: str) -> int:
        """Position of the image called ``name``."""
        return [im.name for im in self.images].index(name)

    def to_dict(self) -> dict[str, Any]:
        """Serialize to plain JSON types."""
        g = self.global_fit
        return {
            "stacrrn_model_version": MODEL_VERSION,
            "method": self.method,
            "images": [{"name": im.name, "path": im.path} for im in self.images],
            "bands": self.bands,
            "grid": self.grid.to_dict(),
            "references": [self.images[i].name for i in self.references],
            "global": {
                "gains": g.gains.tolist(),
                "offsets": g.offsets.tolist(),
                "components": g.components,
                "anchors": g.anchors,
                "isolated": g.isolated,
                **({"unfitted": g.unfitted} if g.unfitted else {}),
            },
            "local": None if self.local_fit is None else self.local_fit.to_dict(),
            "quality": self.quality,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RRNModel:
        """Inverse of :meth:`to_dict`."""
        images = [ImageRef(im["name"], im["path"]) for im in d["images"]]
        names = [im.name for im in images]
        g = d["global"]
        fit = GlobalFit(
            np.asarray(g["gains"], float),
            np.asarray(g["offsets"], float),
            [list(c) for c in g["components"]],
            [list(a) for a in g["anchors"]],
            list(g["isolated"]),
            [int(b) for b in g.get("unfitted", [])],
        )
        local = None if d["local"] is None else LocalFit.from_dict(d["local"])
        return cls(
            d["method"],
            images,
            [int(b) for b in d["bands"]],
            Grid.from_dict(d["grid"]),
            [names.index(n) for n in d["references"]],
            fit,
            local,
            d.get("quality", {}),
        )

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RRNModel:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """Short hash of the parameters that determine output pixels (computed once: a model is immutable)."""
        cached: str | None = self.__dict__.get("_digest")
        if cached is None:
            d = self.to_dict()
            d.pop("quality")
            cached = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
            object.__setattr__(self, "_digest", cached)
        return cached
