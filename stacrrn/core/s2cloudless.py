"""Clear-sky masks from Sentinel Hub's ``s2cloudless`` detector (optional extra; True = usable pixel).

``s2cloudless`` (https://github.com/sentinel-hub/sentinel2-cloud-detector) is a per-pixel
LightGBM classifier of Sentinel-2 L1C top-of-atmosphere reflectance in ten bands
(:data:`S2CLOUDLESS_BANDS`). It looks at one pixel's ten values only, with no spatial context;
averaging the probability over a disc and dilating the thresholded mask are separate
post-processing steps. Install it with ``pip install 'stacrrn[s2cloudless]'``; it is imported
only when one of these functions runs.

Input
-----
Reflectance in ``[0, 1]``: L1C digital numbers divided by 10000, after removing the
``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET`` of -1000 that processing baseline 04.00 (January 2022
on) adds, i.e. ``(DN - 1000) / 10000`` for those products. L2A products lack B10 (cirrus);
take it from the matching L1C. Running on L2A surface reflectance works but is outside what
the model was trained on.

Resolution
----------
The detector runs on whatever grid it is given, typically the 10 m grid with the 20 m and
60 m bands resampled onto it (Google Earth Engine's ``S2_CLOUD_PROBABILITY`` does this, with
bilinear upsampling). Sentinel Hub trained it on 10 m pixels (blog post "Cloud masks at your
service", 2020), but three of its ten bands (B01, B09, B10) are native 60 m and four (B05,
B8A, B11, B12) 20 m, and they run it in production at 160 m (their ``CLP``/``CLM`` layers).
``average_over`` and ``dilation_size`` are disc radii in pixels of the grid given: the usual
4 and 2 mean 40 m and 20 m on a 10 m grid, but 240 m and 120 m at 60 m; scale them with the
pixel size. Prediction takes of the order of 10 microseconds a pixel, so for large images
compute the probability on a coarser grid (36 times fewer pixels at 60 m than at 10 m),
resample it to the image grid and threshold it there with
:func:`s2cloudless_clear_from_probability`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from stacrrn.errors import ParameterError

if TYPE_CHECKING:
    from s2cloudless.cloud_detector import S2PixelCloudDetector

Mask = NDArray[np.bool_]

S2CLOUDLESS_BANDS: dict[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B04": "red",
    "B05": "rededge1",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}
"""The ten Sentinel-2 bands the model reads, in its order, each with its asset / common name.

The names are the asset keys of Element 84's Earth Search ``sentinel-2-l1c`` collection and,
except ``rededge1``, the STAC ``eo:common_name`` of the band.
"""

INSTALL_HINT = "--cloud-mask s2cloudless needs the optional extra: pip install 'stacrrn[s2cloudless]'"
"""The message of the error raised when ``s2cloudless`` is not installed."""

_ALIASES: dict[str, str] = {name: band for band, name in S2CLOUDLESS_BANDS.items()} | {"rededge": "B05"}
_BAND_ID = re.compile(r"^B0?(\d{1,2}A?)$")
_EXPECTED = f"(10, rows, cols) in the order {', '.join(S2CLOUDLESS_BANDS)}"


def s2cloudless_band_id(name: str) -> str | None:
    """The model's band id (``B01`` ... ``B12``) of a band or asset name, or None if it needs none of them.

    Accepts band ids in any case with or without the leading zero (``B1``, ``b01``, ``B8A``)
    and the names of :data:`S2CLOUDLESS_BANDS` (plus the common name ``rededge`` for B05).
    """
    key = name.strip()
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    match = _BAND_ID.match(key.upper())
    if match is None:
        return None
    number = match.group(1)
    band = f"B{number if number.endswith('A') else number.zfill(2)}"
    return band if band in S2CLOUDLESS_BANDS else None


def s2cloudless_stack(bands: Mapping[str, ArrayLike]) -> NDArray[np.float32]:
    """Stack the model's ten bands from a mapping of band or asset name to reflectance.

    Keys may come in any order and use any name :func:`s2cloudless_band_id` knows; keys it
    does not know (``green``, ``scl``, ...) are ignored, so a whole item's assets can be passed.

    Returns
    -------
    numpy.ndarray
        ``(10, rows, cols)`` float32, in the order of :data:`S2CLOUDLESS_BANDS`.

    Raises
    ------
    ParameterError
        When a band is missing or given twice, or the bands' shapes differ.
    """
    found: dict[str, tuple[str, NDArray[Any]]] = {}
    for key, values in bands.items():
        band = s2cloudless_band_id(key)
        if band is None:
            continue
        if band in found:
            raise ParameterError(f"s2cloudless band {band} is given twice, as {found[band][0]!r} and {key!r}")
        found[band] = (key, np.asarray(values))
    missing = [f"{band} ({name})" for band, name in S2CLOUDLESS_BANDS.items() if band not in found]
    if missing:
        raise ParameterError(f"s2cloudless needs bands {', '.join(missing)}, which are missing")
    shapes = {found[band][1].shape for band in S2CLOUDLESS_BANDS}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ParameterError(
            f"s2cloudless bands must be 2-D arrays on one grid; got shapes {', '.join(map(str, sorted(shapes)))}"
        )
    return np.stack([found[band][1] for band in S2CLOUDLESS_BANDS]).astype(np.float32, copy=False)


def s2cloudless_probability(reflectance: ArrayLike, nodata: float | None = None) -> NDArray[np.float32]:
    """Per-pixel cloud probability of the ``s2cloudless`` model, before any averaging.

    Parameters
    ----------
    reflectance
        Top-of-atmosphere reflectance (0..1), ``(10, rows, cols)`` in the order of
        :data:`S2CLOUDLESS_BANDS` (see :func:`s2cloudless_stack`).
    nodata
        A value that marks a missing band value, besides NaN and infinities.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` float32 in ``[0, 1]``; NaN where any band is missing.

    Raises
    ------
    ParameterError
        When ``s2cloudless`` is not installed, the band count is not 10 or the values look like
        digital numbers rather than reflectance.
    """
    data, valid = _prepare(reflectance, nodata)
    return _predict(data, valid)


def s2cloudless_clear(
    reflectance: ArrayLike,
    threshold: float = 0.4,
    average_over: int = 4,
    dilation_size: int = 2,
    nodata: float | None = None,
) -> Mask:
    """Pixels ``s2cloudless`` finds clear, with its averaging and dilation post-processing.

    Parameters
    ----------
    reflectance
        Top-of-atmosphere reflectance (0..1), ``(10, rows, cols)`` in the order of
        :data:`S2CLOUDLESS_BANDS` (see :func:`s2cloudless_stack`).
    threshold
        Cloud where the averaged probability exceeds it (the model's default 0.4).
    average_over
        Radius in pixels of the disc the probability is averaged over before thresholding;
        0 for none. Pixels of this grid: see the module notes on resolution.
    dilation_size
        Radius in pixels of the disc the cloud mask is dilated with; 0 for none.
    nodata
        A value that marks a missing band value, besides NaN and infinities.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` bool, True where clear. Pixels missing any band are never clear; they
        take no part in the averaging either (their neighbours are averaged over valid pixels).

    Raises
    ------
    ParameterError
        When ``s2cloudless`` is not installed, an argument is out of range, the band count is
        not 10 or the values look like digital numbers rather than reflectance.
    """
    _check_post_processing(threshold, average_over, dilation_size)
    data, valid = _prepare(reflectance, nodata)
    probability = _predict(data, valid)
    return s2cloudless_clear_from_probability(probability, threshold, average_over, dilation_size)


def s2cloudless_clear_from_probability(
    probability: ArrayLike, threshold: float = 0.4, average_over: int = 4, dilation_size: int = 2
) -> Mask:
    """Clear pixels of an ``s2cloudless`` probability layer: the model's averaging, threshold and dilation.

    This is ``S2PixelCloudDetector.get_mask_from_prob`` (the same disc, mirrored borders for the
    mean, no dilation in from outside the image), redone in scipy so missing pixels can be left
    out of the mean and because the library's own fails on OpenCV 5 when ``average_over`` is
    off and ``dilation_size`` on (``cv2.dilate`` of an int8 mask). Use it on the output of
    :func:`s2cloudless_probability`, for instance after resampling that to another grid.

    Parameters
    ----------
    probability
        ``(rows, cols)`` cloud probability in ``[0, 1]``; NaN where unknown.
    threshold, average_over, dilation_size
        As for :func:`s2cloudless_clear`.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` bool, True where clear; never True where the probability is NaN, whose
        pixels also take no part in their neighbours' mean.

    Raises
    ------
    ParameterError
        When an argument is out of range or the probability is not 2-D.
    """
    _check_post_processing(threshold, average_over, dilation_size)
    values = np.asarray(probability, dtype=np.float32)
    if values.ndim != 2:
        raise ParameterError(f"an s2cloudless probability layer must be (rows, cols); got shape {values.shape}")
    valid = np.isfinite(values)
    known = np.where(valid, values, 0.0).astype(np.float32)
    if average_over > 0:
        disc = _disc(average_over)
        if valid.all():
            known = ndimage.convolve(known, disc / disc.sum(), mode="reflect")
        else:
            total = ndimage.convolve(known, disc, mode="reflect")
            count = ndimage.convolve(valid.astype(np.float32), disc, mode="reflect")
            with np.errstate(divide="ignore", invalid="ignore"):
                known = np.where(count > 0, total / count, 0.0).astype(np.float32)
    cloud = valid & (known > threshold)
    if dilation_size > 0 and cloud.any():
        cloud = ndimage.binary_dilation(cloud, structure=_disc(dilation_size).astype(bool))
    return np.asarray(valid & ~cloud)


def _check_post_processing(threshold: float, average_over: int, dilation_size: int) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"s2cloudless threshold must be within [0, 1]; got {threshold}")
    if average_over < 0 or dilation_size < 0:
        raise ParameterError(
            f"s2cloudless average_over and dilation_size must be >= 0; got {average_over} and {dilation_size}"
        )


def _prepare(reflectance: ArrayLike, nodata: float | None) -> tuple[NDArray[np.float32], Mask]:
    """Check the stack; return it as float32 with missing values zeroed, and the valid pixels."""
    data = np.array(reflectance, dtype=np.float32)
    if data.ndim != 3 or data.shape[0] != len(S2CLOUDLESS_BANDS):
        raise ParameterError(f"s2cloudless needs {_EXPECTED}; got shape {data.shape}")
    missing = ~np.isfinite(data)
    if nodata is not None:
        missing |= data == np.float32(nodata)
    valid = ~missing.any(axis=0)
    if valid.any() and float(np.median(data[:, valid])) > 2.0:
        raise ParameterError(
            "s2cloudless needs reflectance in [0, 1]; these look like digital numbers (divide by 10000)"
        )
    data[missing] = 0.0
    return data, np.asarray(valid)


def _predict(data: NDArray[np.float32], valid: Mask) -> NDArray[np.float32]:
    """Model probability of a checked ``(10, rows, cols)`` stack; NaN outside ``valid``."""
    probability = np.full(valid.shape, np.nan, dtype=np.float32)
    if valid.any():
        pixels = np.ascontiguousarray(data[:, valid].T)
        predicted = _shared_detector().get_cloud_probability_maps(pixels[np.newaxis, np.newaxis])
        probability[valid] = predicted[0, 0]
    return probability


def _disc(radius: int) -> NDArray[np.float32]:
    """The disc ``s2cloudless`` post-processes with (``x**2 + y**2 <= radius**2``, as its ``cv2_disk``)."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc: NDArray[np.float32] = (yy**2 + xx**2 <= radius**2).astype(np.float32)
    return disc


@lru_cache(maxsize=1)
def _shared_detector() -> S2PixelCloudDetector:
    """One detector for predictions, so the model file is read once a process."""
    try:
        from s2cloudless.cloud_detector import S2PixelCloudDetector
    except ImportError as exc:
        raise ParameterError(INSTALL_HINT) from exc
    return S2PixelCloudDetector(all_bands=False, average_over=None, dilation_size=None)
