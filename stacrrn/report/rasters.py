"""Small reads for the report: decimated previews from COG overviews, footprints, block maps.

Nothing here reads a raster at full resolution (except rasters already smaller than a
preview): previews come from the smallest overview that is still at least ``target``
pixels on its longer side, through rasterio's ``out_shape`` decimated reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.transform import array_bounds

from stacrrn.core.model import RRNModel
from stacrrn.errors import UnreadableRasterError
from stacrrn.io.stac import gdal_path
from stacrrn.pipeline.apply import field_map
from stacrrn.report.run_outputs import BandSource

F64 = NDArray[np.float64]

PREVIEW_SIZE = 256
"""Smallest longer side (pixels) of a preview."""


@dataclass(frozen=True)
class BlockMap:
    """Block values of one band on the block grid and their extent ``(left, right, bottom, top)``."""

    name: str
    values: F64
    extent: tuple[float, float, float, float]


def preview_shape(width: int, height: int, overviews: Sequence[int], target: int = PREVIEW_SIZE) -> tuple[int, int]:
    """``(rows, cols)`` of the smallest overview at least ``target`` pixels on its longer side.

    Parameters
    ----------
    width, height
        Full-resolution size.
    overviews
        Overview decimation factors (``src.overviews(band)``).
    target
        Smallest longer side wanted.

    Returns
    -------
    tuple of int
        The decimated shape; without overviews, a decimation to about ``target`` pixels.
    """
    longer = max(width, height)
    fitting = [f for f in overviews if longer / f >= target]
    factor = max(fitting, default=1) if overviews else max(1, longer // target)
    return math.ceil(height / factor), math.ceil(width / factor)


def read_preview(sources: Sequence[BandSource], target: int = PREVIEW_SIZE) -> F64:
    """Decimated values of the bands ``sources`` name, NaN where invalid.

    Bands from several files (one asset per band) are read on the first file's preview shape.

    Parameters
    ----------
    sources
        One entry per band, in the order wanted.
    target
        Smallest longer side of the preview (see :func:`preview_shape`).

    Returns
    -------
    ndarray
        ``(bands, rows, cols)`` float64.

    Raises
    ------
    UnreadableRasterError
        If a raster cannot be read.
    """
    shape: tuple[int, int] | None = None
    out: list[F64 | None] = [None] * len(sources)
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(sources):
        groups.setdefault(s.href, []).append(k)
    for href, positions in groups.items():
        try:
            with rasterio.open(gdal_path(href)) as src:
                if shape is None:
                    shape = preview_shape(src.width, src.height, src.overviews(sources[positions[0]].index), target)
                indexes = [sources[k].index for k in positions]
                data = src.read(indexes, out_shape=(len(indexes), *shape), masked=True, resampling=Resampling.nearest)
        except RasterioError as exc:
            raise UnreadableRasterError(f"cannot read a preview of {href}: {str(exc).splitlines()[0]}") from None
        values = np.ma.filled(data.astype(np.float64), np.nan)
        for k, band in zip(positions, values, strict=True):
            out[k] = band
    return np.stack([v for v in out if v is not None])


def band_means(values: F64) -> F64:
    """Mean of every band over its valid (finite) pixels; NaN for an empty band."""
    flat = values.reshape(values.shape[0], -1)
    n = np.isfinite(flat).sum(axis=1)
    total = np.where(np.isfinite(flat), flat, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def footprint(href: str, crs: str, densify: int = 8) -> F64:
    """Outline of a raster's bounds in ``crs``: a closed ring ``(points, 2)`` of x, y.

    Each side is densified with ``densify`` points so that it bends where the projection does.

    Raises
    ------
    UnreadableRasterError
        If the raster cannot be opened.
    """
    try:
        with rasterio.open(gdal_path(href)) as src:
            left, bottom, right, top = src.bounds
            src_crs = src.crs
    except RasterioError as exc:
        raise UnreadableRasterError(f"cannot read the bounds of {href}: {str(exc).splitlines()[0]}") from None
    t = np.linspace(0.0, 1.0, densify, endpoint=False)
    xs = np.concatenate(
        [left + (right - left) * t, np.full_like(t, right), right - (right - left) * t, np.full_like(t, left)]
    )
    ys = np.concatenate(
        [np.full_like(t, top), top - (top - bottom) * t, np.full_like(t, bottom), bottom + (top - bottom) * t]
    )
    if src_crs is not None:
        xs_t, ys_t = rasterio.warp.transform(src_crs, crs, xs.tolist(), ys.tolist())
        xs, ys = np.asarray(xs_t), np.asarray(ys_t)
    ring = np.column_stack([xs, ys])
    return np.vstack([ring, ring[:1]])


def field_maps(model: RRNModel, band: int) -> list[BlockMap]:
    """Every image's local gain field of model band position ``band``, placed on the model's grid.

    Raises
    ------
    ValueError
        If the model has no local step.
    """
    out = []
    for i, im in enumerate(model.images):
        values, grid = field_map(model, i)
        left, bottom, right, top = array_bounds(grid.height, grid.width, Affine(*grid.transform))
        out.append(BlockMap(im.name, np.asarray(values[band], dtype=np.float64), (left, right, bottom, top)))
    return out


def read_block_map(href: str, band: int, name: str = "reference") -> BlockMap:
    """Band ``band`` (0-based) of a block map COG, NaN where nodata, with its extent.

    Raises
    ------
    UnreadableRasterError
        If it cannot be read.
    """
    try:
        with rasterio.open(gdal_path(href)) as src:
            values = np.ma.filled(src.read(band + 1, masked=True).astype(np.float64), np.nan)
            left, bottom, right, top = src.bounds
    except RasterioError as exc:
        raise UnreadableRasterError(f"cannot read the block map {href}: {str(exc).splitlines()[0]}") from None
    return BlockMap(name, values, (left, right, bottom, top))
