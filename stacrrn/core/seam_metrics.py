"""How visible the seams of a mosaic are: jump across seams and seam-to-nearby gradient ratio.

A seam pair is two 4-connected pixels, both valid, that the seamlines give to different
images. The *jump* is the mean absolute difference of the mosaic across seam pairs; the
*gradient ratio* divides it by the mean absolute difference of the other adjacent pairs
within ``near`` pixels of a seam (1: the seam is as smooth as the image around it). Both
come from sums that chunks compute independently and merge (pairs that straddle two chunks
are not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from stacrrn.core.moments import pixels_where
from stacrrn.core.seamlines import mask_window

F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]


@dataclass
class SeamSums:
    """Mergeable sums of absolute differences across seam pairs and nearby pairs, per band."""

    n_bands: int
    seam_pairs: int = 0
    near_pairs: int = 0
    seam_sum: F64 = field(default_factory=lambda: np.zeros(0))
    near_sum: F64 = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.seam_sum.size == 0:
            self.seam_sum = np.zeros(self.n_bands)
        if self.near_sum.size == 0:
            self.near_sum = np.zeros(self.n_bands)

    def add(self, other: SeamSums) -> None:
        """Merge another chunk's sums (in place)."""
        self.seam_pairs += other.seam_pairs
        self.near_pairs += other.near_pairs
        self.seam_sum += other.seam_sum
        self.near_sum += other.near_sum

    @property
    def jump(self) -> F64:
        """Mean absolute difference across seams, per band (NaN without seams)."""
        return self.seam_sum / self.seam_pairs if self.seam_pairs else np.full(self.n_bands, np.nan)

    @property
    def gradient_ratio(self) -> F64:
        """Seam jump over the mean absolute difference of nearby pairs, per band."""
        near = self.near_sum / self.near_pairs if self.near_pairs else np.full(self.n_bands, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(self.jump / near, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``None`` for undefined figures)."""

        def clean(a: F64) -> list[float | None]:
            return [float(v) if np.isfinite(v) else None for v in a]

        return {
            "seam_pairs": self.seam_pairs,
            "jump": clean(self.jump),
            "gradient_ratio": clean(self.gradient_ratio),
        }


def _seam_pairs(valid: Mask, labels: NDArray[np.integer]) -> tuple[Mask, list[tuple[Any, Any, Mask, Mask]]]:
    """Pixels of seam pairs, and per axis the slices of the pairs' two pixels, both valid and seam masks."""
    seam_pixels = np.zeros(valid.shape, dtype=bool)
    pairs = []
    for axis in (0, 1):
        a = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        b = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        both = valid[a] & valid[b]
        seam = both & (labels[a] != labels[b])
        seam_pixels[a] |= seam
        seam_pixels[b] |= seam
        pairs.append((a, b, both, seam))
    return seam_pixels, pairs


def seam_sums(values: F64, valid: Mask, labels: NDArray[np.integer], near: int = 3) -> SeamSums:
    """Sums of one window: ``values`` ``(bands, rows, cols)``, ``valid`` and seam ``labels`` ``(rows, cols)``.

    Only the box around the seam pixels, ``near`` pixels wider, is differenced: every pair
    counted lies in it.
    """
    out = SeamSums(values.shape[0])
    seam_pixels, _ = _seam_pairs(valid, labels)
    if not seam_pixels.any():
        return out
    rows, cols = mask_window(seam_pixels, near)
    values, valid, labels = values[:, rows, cols], valid[rows, cols], labels[rows, cols]
    seam_pixels, pairs = _seam_pairs(valid, labels)
    nearby = ndimage.binary_dilation(seam_pixels, iterations=near)
    for a, b, both, seam in pairs:
        diff = np.abs(values[(slice(None), *a)] - values[(slice(None), *b)])
        close = both & ~seam & nearby[a] & nearby[b]
        out.seam_pairs += int(seam.sum())
        out.near_pairs += int(close.sum())
        out.seam_sum += pixels_where(diff, seam).sum(axis=1)
        out.near_sum += pixels_where(diff, close).sum(axis=1)
    return out
