"""Clear-sky masks from a scene's own quality assets (pure numpy; True = usable pixel).

- Landsat Collection 2 ``QA_PIXEL`` bit flags (USGS Landsat 8-9 C2 L2 Science Product Guide,
  table 6-3): bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow,
  6 clear, 7 water.
- Sentinel-2 L2A scene classification (``SCL``): 0 no data, 1 saturated or defective,
  2 dark area, 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified,
  8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow or ice.
- A cloud-probability layer (e.g. ``s2cloudless`` or Sentinel-2 ``CLD``) and a threshold.
- Without any of these, a spectral test on reflectance for any sensor with blue and red bands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from stacrrn.core.settings import QA_KINDS
from stacrrn.errors import ArgumentError

Mask = NDArray[np.bool_]

QA_PIXEL_BITS = {
    "fill": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "shadow": 4,
    "snow": 5,
    "clear": 6,
    "water": 7,
}
"""Landsat Collection 2 ``QA_PIXEL`` flag bits."""

QA_PIXEL_EXCLUDE = ("fill", "dilated_cloud", "cirrus", "cloud", "shadow", "snow")
"""Flags that make a pixel unusable by default (water stays: it is often a good invariant)."""

SCL_CLASSES = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area",
    3: "cloud_shadow",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow_or_ice",
}
"""Sentinel-2 L2A scene classification classes."""

SCL_EXCLUDE = (0, 1, 3, 8, 9, 10, 11)
"""Classes that make a pixel unusable by default."""


def qa_pixel_clear(qa: NDArray[np.integer], exclude: Iterable[str] = QA_PIXEL_EXCLUDE) -> Mask:
    """Usable pixels of a Landsat C2 ``QA_PIXEL`` band: none of the ``exclude`` flags set.

    Raises
    ------
    ArgumentError
        For an unknown flag name.
    """
    bits = 0
    for name in exclude:
        if name not in QA_PIXEL_BITS:
            raise ArgumentError(f"unknown QA_PIXEL flag {name!r}; known: {', '.join(QA_PIXEL_BITS)}")
        bits |= 1 << QA_PIXEL_BITS[name]
    return np.asarray((qa.astype(np.uint32) & bits) == 0)


def scl_clear(scl: NDArray[np.integer], exclude: Iterable[int] = SCL_EXCLUDE) -> Mask:
    """Usable pixels of a Sentinel-2 ``SCL`` band: class not in ``exclude``."""
    return np.asarray(~np.isin(scl, list(exclude)))


def probability_clear(probability: NDArray[np.floating] | NDArray[np.integer], threshold: float) -> Mask:
    """Usable pixels of a cloud-probability layer: probability below ``threshold`` (same units)."""
    return np.asarray(probability < threshold)


def nonzero_clear(mask: NDArray[np.integer]) -> Mask:
    """Usable pixels of a plain mask raster: every non-zero value."""
    return np.asarray(mask != 0)


QA_DECODERS: dict[str, Callable[[NDArray[np.integer]], Mask]] = dict(
    zip(QA_KINDS, (qa_pixel_clear, scl_clear, nonzero_clear), strict=True)
)
"""Decoder of each quality-asset kind of :data:`~stacrrn.core.settings.QA_KINDS`."""


def clear_from_qa(kind: str, values: NDArray[np.integer]) -> Mask:
    """Usable pixels of a quality asset of the given kind (see :data:`QA_DECODERS`).

    Raises
    ------
    ArgumentError
        For an unknown kind.
    """
    if kind not in QA_DECODERS:
        raise ArgumentError(f"unknown quality asset kind {kind!r}; known: {', '.join(QA_DECODERS)}")
    return QA_DECODERS[kind](values)


@dataclass(frozen=True)
class SpectralThresholds:
    """Thresholds of the spectral cloud test, on top-of-atmosphere or surface reflectance (0..1).

    A pixel is cloud when it is bright (``min(blue, red) > brightness``), white (visible
    bands within ``whiteness`` of their mean, relative) and hazy by the haze-optimized
    transform (``blue - 0.5 red - hot_offset > 0``; Zhang et al. 2002, RSE 82:173-187; the
    same tests open Fmask, Zhu & Woodcock 2012, RSE 118:83-94). ``buffer`` pixels around
    cloud are masked too (cloud edges, nearby shadows).
    """

    brightness: float = 0.3
    whiteness: float = 0.7
    hot_offset: float = 0.08
    buffer: int = 3


def spectral_clear(
    blue: NDArray[np.floating],
    red: NDArray[np.floating],
    thresholds: SpectralThresholds | None = None,
    green: NDArray[np.floating] | None = None,
) -> Mask:
    """Pixels the spectral cloud test finds clear, for any sensor with blue and red bands.

    Parameters
    ----------
    blue, red, green
        Reflectance (0..1) of one window, ``(rows, cols)``; green is optional.
    thresholds
        Test thresholds (defaults documented in :class:`SpectralThresholds`).

    Returns
    -------
    numpy.ndarray
        True where no cloud was found (within ``buffer`` pixels).
    """
    t = thresholds or SpectralThresholds()
    visible = [blue, red] if green is None else [blue, green, red]
    mean = np.mean(visible, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        whiteness = np.sum([np.abs(v - mean) for v in visible], axis=0) / mean
    cloud = (np.minimum(blue, red) > t.brightness) & (whiteness < t.whiteness) & (blue - 0.5 * red - t.hot_offset > 0)
    if t.buffer > 0 and cloud.any():
        cloud = ndimage.binary_dilation(cloud, iterations=t.buffer)
    return np.asarray(~cloud)
