"""Small reads for the report: decimated previews from COG overviews, footprints, block maps.

Also the block-level mosaic of the local gain fields (:func:`gain_mosaic`), which reads nothing.

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

from stacrrn.core.local_model import LocalFit
from stacrrn.core.model import RRNModel
from stacrrn.errors import UnreadableRasterError
from stacrrn.io.stac import gdal_path
from stacrrn.pipeline.passes.apply import field_map
from stacrrn.report.run_outputs import BandSource
from stacrrn.types import Box

F64 = NDArray[np.float64]

PREVIEW_SIZE = 256
"""Smallest longer side (pixels) of a preview."""

NO_CORRECTION = 1e-6
"""A band whose every local gain is within this of 1 has no local correction."""

Extent = tuple[float, float, float, float]
"""``(left, right, bottom, top)`` in the model grid's CRS, as matplotlib's ``imshow`` takes it."""


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


@dataclass(frozen=True)
class GainMosaic:
    """Every band's local gain over the whole block grid (see :func:`gain_mosaic`).

    Attributes
    ----------
    values
        ``(bands, block rows, block cols)``: where frames overlap, the gain departing most
        from 1 in log terms (largest ``|log g|``, its sign kept); NaN where no frame reaches.
    spread
        ``(bands,)``: the largest ``|g - 1|`` of the band over every image's nodes.
    """

    values: F64
    spread: F64

    @property
    def uncorrected(self) -> NDArray[np.bool_]:
        """``(bands,)``: True where every field of the band is 1 within :data:`NO_CORRECTION`."""
        return np.asarray(self.spread <= NO_CORRECTION)


def gain_spread(local: LocalFit) -> F64:
    """The largest ``|g - 1|`` of every band over all images' field nodes (NaN nodes ignored)."""
    spread = np.zeros(max((f.shape[0] for f in local.fields), default=0))
    for f in local.fields:
        departure = np.abs(f.reshape(f.shape[0], -1) - 1)
        spread = np.maximum(spread, np.max(np.nan_to_num(departure, nan=0.0), axis=1, initial=0.0))
    return spread


def gain_mosaic(local: LocalFit) -> GainMosaic:
    """Place every image's field nodes on the whole block grid, keeping the strongest per block.

    Node ``(r, c)`` of image ``i`` is block ``(frames[i].row0 + r, frames[i].col0 + c)``.
    Where frames overlap, the node with the largest ``|log g|`` wins (the first image on
    ties), so a darkening and a brightening of the same size weigh alike. Pure: no pixel
    is read.

    Parameters
    ----------
    local
        The model's local fit.

    Returns
    -------
    GainMosaic
        The per-band block mosaic of gains and each band's spread.
    """
    blocks = local.blocks
    spread = gain_spread(local)
    values = np.full((spread.size, blocks.n_rows, blocks.n_cols), np.nan)
    strength = np.full(values.shape, -np.inf)
    whole = Box(0, 0, blocks.n_rows, blocks.n_cols)
    for frame, field in zip(local.frames, local.fields, strict=True):
        inside = frame.intersect(whole)
        if inside.empty:
            continue
        window = _window(inside)
        nodes = field[_window(inside.shift(-frame.row0, -frame.col0))]
        with np.errstate(divide="ignore", invalid="ignore"):
            log = np.abs(np.log(nodes))
        stronger = log > strength[window]  # False for NaN (and non-positive) nodes
        values[window] = np.where(stronger, nodes, values[window])
        strength[window] = np.where(stronger, log, strength[window])
    return GainMosaic(values, spread)


def _window(box: Box) -> tuple[slice, slice, slice]:
    """Index of ``box`` in a ``(bands, rows, cols)`` array, all bands."""
    return np.s_[:, box.row0 : box.row1, box.col0 : box.col1]


def pixel_ring(model: RRNModel, box: Box) -> F64:
    """Closed outline ``(5, 2)`` of x, y of a pixel box of the model grid, in its CRS."""
    cols = np.array([box.col0, box.col1, box.col1, box.col0, box.col0], dtype=np.float64)
    rows = np.array([box.row0, box.row0, box.row1, box.row1, box.row0], dtype=np.float64)
    a, b, c, d, e, f = model.grid.transform
    return np.column_stack([a * cols + b * rows + c, d * cols + e * rows + f])


def ring_extent(ring: F64) -> Extent:
    """``(left, right, bottom, top)`` of an outline."""
    return float(ring[:, 0].min()), float(ring[:, 0].max()), float(ring[:, 1].min()), float(ring[:, 1].max())


def block_pixels(model: RRNModel, blocks: Box, clip: bool = True) -> Box:
    """The pixel box of a box of block indices (cut to the model grid with ``clip``)."""
    if model.local_fit is None:
        raise ValueError("the model has no local step")
    bh, bw = model.local_fit.blocks.block_height, model.local_fit.blocks.block_width
    box = Box(blocks.row0 * bh, blocks.col0 * bw, blocks.row1 * bh, blocks.col1 * bw)
    return box.intersect(model.grid.box) if clip else box


def frame_outlines(model: RRNModel) -> list[F64]:
    """Every image's block frame as a closed outline in the model grid's CRS, cut to the grid.

    Raises
    ------
    ValueError
        If the model has no local step.
    """
    if model.local_fit is None:
        raise ValueError("the model has no local step")
    return [pixel_ring(model, block_pixels(model, frame)) for frame in model.local_fit.frames]
