"""A low-resolution mosaic of a run's images, before or after: overview reads, bounded memory.

The canvas is the model's grid decimated to at most :data:`MOSAIC_SIZE` pixels on its longer
side. Each image's bands are read at about the canvas's resolution (rasterio's decimated
reads take the COG overviews), warped onto the canvas (nearest neighbour) and painted where
no earlier image has painted: the first image in model order is on top, before and after
alike. Memory holds the canvas and one image's bands on the canvas pixels it covers, whatever
the number or size of the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.transform import array_bounds

from stacrrn.errors import UnreadableRasterError
from stacrrn.io.stac import gdal_path
from stacrrn.report.run_outputs import BandSource
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]

MOSAIC_SIZE = 768
"""Longer side (pixels) of the mosaic canvas at most."""


def canvas_of(grid: Grid, size: int = MOSAIC_SIZE) -> Grid:
    """The grid decimated to at most ``size`` pixels on its longer side (same CRS and extent)."""
    factor = max(1.0, max(grid.width, grid.height) / size)
    width, height = max(1, math.ceil(grid.width / factor)), max(1, math.ceil(grid.height / factor))
    a, b, c, d, e, f = grid.transform
    sx, sy = grid.width / width, grid.height / height
    return Grid(grid.crs, (a * sx, b * sy, c, d * sx, e * sy, f), width, height)


def grid_extent(grid: Grid) -> tuple[float, float, float, float]:
    """``(left, right, bottom, top)`` of a grid, as matplotlib's ``imshow`` takes it."""
    left, bottom, right, top = array_bounds(grid.height, grid.width, Affine(*grid.transform))
    return left, right, bottom, top


def _bounds_on(src: rasterio.DatasetReader, canvas: Grid) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of a raster in the canvas's CRS."""
    left, bottom, right, top = src.bounds
    if src.crs is not None:
        left, bottom, right, top = rasterio.warp.transform_bounds(src.crs, canvas.crs, left, bottom, right, top)
    return float(left), float(bottom), float(right), float(top)


def read_shape(src: rasterio.DatasetReader, canvas: Grid) -> tuple[int, int]:
    """``(rows, cols)`` reading ``src`` at about the canvas's pixel size (never above full resolution)."""
    left, bottom, right, top = _bounds_on(src, canvas)
    cols = (right - left) / canvas.resolution[0]
    rows = (top - bottom) / canvas.resolution[1]
    factor = max(1.0, min(src.width / max(cols, 1e-9), src.height / max(rows, 1e-9)))
    return max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor))


def _window_on(src: rasterio.DatasetReader, canvas: Grid) -> Box:
    """The canvas pixels a raster covers (a box cut to the canvas, rounded outwards)."""
    left, bottom, right, top = _bounds_on(src, canvas)
    inverse = ~Affine(*canvas.transform)
    corners = [inverse @ xy for xy in ((left, top), (right, top), (left, bottom), (right, bottom))]
    cols, rows = [c for c, _ in corners], [r for _, r in corners]
    box = Box(math.floor(min(rows)), math.floor(min(cols)), math.ceil(max(rows)), math.ceil(max(cols)))
    return box.intersect(canvas.box)


def read_on_canvas(sources: Sequence[BandSource], canvas: Grid) -> tuple[Box, F64]:
    """The bands ``sources`` name, read decimated and warped onto the canvas pixels the raster covers.

    Returns
    -------
    tuple
        The covered box of the canvas (taken from the first source's raster) and the values
        ``(bands, box rows, box cols)`` there, NaN where invalid.

    Raises
    ------
    UnreadableRasterError
        If a raster cannot be read.
    """
    box: Box | None = None
    out = np.zeros((0, 0, 0))
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(sources):
        groups.setdefault(s.href, []).append(k)
    for href, positions in groups.items():
        try:
            with rasterio.open(gdal_path(href)) as src:
                if box is None:
                    box = _window_on(src, canvas)
                    out = np.full((len(sources), box.height, box.width), np.nan)
                shape = read_shape(src, canvas)
                indexes = [sources[k].index for k in positions]
                data = src.read(indexes, out_shape=(len(indexes), *shape), masked=True, resampling=Resampling.nearest)
                transform = src.transform @ Affine.scale(src.width / shape[1], src.height / shape[0])
                crs = src.crs or canvas.crs
        except RasterioError as exc:
            raise UnreadableRasterError(f"cannot read a preview of {href}: {str(exc).splitlines()[0]}") from None
        if box.empty:
            break
        values = np.ma.filled(data.astype(np.float64), np.nan)
        for k, band in zip(positions, values, strict=True):
            rasterio.warp.reproject(
                band, out[k], src_transform=transform, src_crs=crs, src_nodata=np.nan,
                dst_transform=Affine(*canvas.window(box).transform), dst_crs=canvas.crs, dst_nodata=np.nan,
                resampling=Resampling.nearest,
            )  # fmt: skip
    return box or Box(0, 0, 0, 0), out


def read_mosaic(images: Sequence[Sequence[BandSource]], canvas: Grid, notes: list[str] | None = None) -> F64 | None:
    """Mosaic of the images' bands on ``canvas``, the first image on top; ``None`` when none could be read.

    Parameters
    ----------
    images
        Per image, the sources of the bands wanted (in order); empty when unknown.
    canvas
        The mosaic's grid (:func:`canvas_of`).
    notes
        Receives a line per raster that could not be read.

    Returns
    -------
    ndarray or None
        ``(bands, rows, cols)`` float64, NaN where no image has a valid pixel in every band.
    """
    mosaic: F64 | None = None
    for sources in images:
        if not sources:
            continue
        try:
            box, values = read_on_canvas(sources, canvas)
        except UnreadableRasterError as exc:
            if notes is not None:
                notes.append(str(exc))
            continue
        if mosaic is None:
            mosaic = np.full((len(sources), canvas.height, canvas.width), np.nan)
        if box.empty:
            continue
        window = mosaic[:, box.row0 : box.row1, box.col0 : box.col1]  # a view: painting it paints the mosaic
        empty = ~np.isfinite(window).all(axis=0) & np.isfinite(values).all(axis=0)
        window[:, empty] = values[:, empty]
    return mosaic
