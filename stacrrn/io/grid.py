"""The common grid: one CRS, resolution and extent covering every input."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform, transform, transform_bounds
from scipy.ndimage import map_coordinates

from stacrrn.errors import MissingCRSError, ParameterError
from stacrrn.io.raster import RasterInfo, same_crs
from stacrrn.types import BlockGrid, Box, Grid


def _bounds(info: RasterInfo) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = info.transform
    x0, x1 = c, c + a * info.width
    y0, y1 = f, f + e * info.height
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _resolution_in(info: RasterInfo, crs: CRS) -> tuple[float, float]:
    if same_crs(info.crs, crs.to_wkt()):
        return abs(info.transform[0]), abs(info.transform[4])
    transform, _, _ = calculate_default_transform(info.crs, crs, info.width, info.height, *_bounds(info))
    return abs(transform.a), abs(transform.e)


def _crs_name(wkt: str) -> str:
    """A CRS's name (the first quoted string of its WKT)."""
    return wkt.split('"')[1] if wkt.count('"') >= 2 else wkt[:40]


def _bounds_in(info: RasterInfo, target: CRS) -> tuple[float, float, float, float]:
    """Bounds of ``info`` in ``target``.

    Raises
    ------
    MissingCRSError
        If PROJ finds no way from the raster's CRS to ``target`` (e.g. an engineering CRS).
    """
    if same_crs(info.crs, target.to_wkt()):
        return _bounds(info)
    with rasterio.Env():  # GDAL's messages go to Python logging, not straight to stderr
        try:
            left, bottom, right, top = transform_bounds(info.crs, target, *_bounds(info), densify_pts=21)
        except Exception:  # rasterio raises CRSError or a private CPLE class: any failure means "no way there"
            name = _crs_name(info.crs)
            raise MissingCRSError(
                f"{info.path}: its CRS ({name}) cannot be transformed to the common grid's "
                f"({_crs_name(target.to_wkt())}); assign "
                f"a georeferenced CRS, e.g. `rio edit-info --crs EPSG:32633 {info.path}`"
            ) from None
    return left, bottom, right, top


def common_grid(infos: Sequence[RasterInfo], crs: str | None = None, resolution: float | None = None) -> Grid:
    """Choose the grid every input is compared on.

    Parameters
    ----------
    infos
        The inputs.
    crs
        Target CRS (anything rasterio understands); default: the first input's.
    resolution
        Pixel size in target CRS units; default: the finest input resolution.

    Returns
    -------
    Grid
        A north-up grid over the union of the inputs, aligned with the first input
        whose CRS and resolution match it (so aligned inputs are read without resampling).
    """
    try:
        target = CRS.from_user_input(crs) if crs else CRS.from_user_input(infos[0].crs)
    except Exception:
        raise ParameterError(f"unknown CRS {crs!r}; use e.g. EPSG:32618") from None
    if resolution is not None and not 0 < resolution < math.inf:
        raise ParameterError(f"--resolution must be a positive number, got {resolution}")
    boxes = [_bounds_in(info, target) for info in infos]
    res = [_resolution_in(info, target) for info in infos]
    rx = resolution or min(r[0] for r in res)
    ry = resolution or min(r[1] for r in res)
    left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
    ax, ay = left, top
    for info, r in zip(infos, res, strict=True):
        if same_crs(info.crs, target.to_wkt()) and math.isclose(r[0], rx) and math.isclose(r[1], ry):
            ax, ay = info.transform[2], info.transform[5]
            break
    x0 = ax + math.floor((left - ax) / rx + 1e-6) * rx
    y1 = ay + math.ceil((top - ay) / ry - 1e-6) * ry
    width = math.ceil((right - x0) / rx - 1e-6)
    height = math.ceil((y1 - bottom) / ry - 1e-6)
    check_grid_size(width, height, sum(info.width * info.height for info in infos), rx)
    return Grid(target.to_wkt(), (rx, 0.0, x0, 0.0, -ry, y1), width, height)


MAX_GRID_PIXELS = 10**12
"""Most pixels a common grid may have (a 1,000,000² mosaic; chunk lists and masks grow with it)."""

MAX_UPSAMPLING = 10_000
"""Most common-grid pixels per input pixel (100x finer than the inputs on each axis)."""


def check_grid_size(width: int, height: int, input_pixels: int, resolution: float) -> None:
    """Refuse a common grid too large to plan, before anything is allocated for it.

    Raises
    ------
    ParameterError
        If the grid has more than :data:`MAX_GRID_PIXELS` pixels, or more than
        :data:`MAX_UPSAMPLING` times the inputs' pixels.
    """
    pixels = width * height
    if pixels > MAX_GRID_PIXELS or pixels > MAX_UPSAMPLING * max(input_pixels, 1):
        raise ParameterError(
            f"the common grid would be {width} x {height} pixels at resolution {resolution:g} "
            f"({pixels / max(input_pixels, 1):.3g} x the inputs' pixels); choose a coarser --resolution "
            "(in the units of --crs) or another --crs"
        )


def footprint(info: RasterInfo, grid: Grid) -> Box:
    """Pixel box of ``grid`` covered by the raster's bounds."""
    left, bottom, right, top = transform_bounds(info.crs, grid.crs, *_bounds(info), densify_pts=21)
    rx, ry = grid.resolution
    x0, y1 = grid.transform[2], grid.transform[5]
    box = Box(
        math.floor((y1 - top) / ry + 1e-6),
        math.floor((left - x0) / rx + 1e-6),
        math.ceil((y1 - bottom) / ry - 1e-6),
        math.ceil((right - x0) / rx - 1e-6),
    )
    return box.intersect(grid.box)


MIN_BLOCK_PIXELS = 2
"""Smallest block edge of the local step, in common-grid pixels."""

MAX_BLOCKS = 4_000_000
"""Most blocks a block grid may have (block moments are kept per image and band)."""


def block_grid(grid: Grid, block_size: float | None = None, n_blocks: int | None = None) -> BlockGrid:
    """Lay a block grid over ``grid``.

    Parameters
    ----------
    grid
        The common grid.
    block_size
        Block edge in CRS units (takes precedence).
    n_blocks
        Number of blocks along the longer side of the grid; default 32.

    Returns
    -------
    BlockGrid
        Square blocks (in CRS units) of at least 2 pixels.
    """
    rx, ry = grid.resolution
    longest = max(grid.width * rx, grid.height * ry)
    if block_size is not None:
        if not 0 < block_size < math.inf:
            raise ParameterError(f"--block-size must be a positive number, got {block_size}")
        edge, asked = block_size, f"--block-size {block_size:g}"
    else:
        n = 32 if n_blocks is None else n_blocks
        if n < 1:
            raise ParameterError(f"--blocks must be at least 1, got {n}")
        edge, asked = longest / n, f"--blocks {n}"
    bh, bw = round(edge / ry), round(edge / rx)
    explicit = block_size is not None or n_blocks is not None
    if explicit and min(bh, bw) < MIN_BLOCK_PIXELS:
        finest = MIN_BLOCK_PIXELS * max(rx, ry)
        most = int(longest // finest)
        raise ParameterError(
            f"{asked} makes blocks of {min(edge / ry, edge / rx):.2g} pixels on this grid; a block needs at least "
            f"{MIN_BLOCK_PIXELS} pixels: use --block-size {finest:g} or more, or --blocks {most} or fewer"
        )
    blocks = BlockGrid.over(grid, max(bh, MIN_BLOCK_PIXELS), max(bw, MIN_BLOCK_PIXELS))
    if blocks.n_rows * blocks.n_cols > MAX_BLOCKS:
        raise ParameterError(
            f"{asked} lays {blocks.n_rows} x {blocks.n_cols} blocks over the grid (at most {MAX_BLOCKS:,}); "
            "choose a larger --block-size or fewer --blocks"
        )
    return blocks


def chunks(grid: Grid, size: int) -> list[Box]:
    """Split ``grid`` into square chunks of ``size`` pixels (edge chunks smaller)."""
    return [
        Box(r, c, min(r + size, grid.height), min(c + size, grid.width))
        for r in range(0, grid.height, size)
        for c in range(0, grid.width, size)
    ]


def box_array(boxes: Sequence[Box]) -> NDArray[np.int64]:
    """Boxes as the rows ``[row0, col0, row1, col1]`` of an ``(n, 4)`` array (for :func:`boxes_meeting`)."""
    return np.array([b.to_list() for b in boxes], dtype=np.int64).reshape(-1, 4)


def boxes_meeting(boxes: NDArray[np.int64], box: Box) -> NDArray[np.intp]:
    """Indices of the rows ``[row0, col0, row1, col1]`` of ``boxes`` that meet ``box``."""
    meets = (boxes[:, 0] < box.row1) & (boxes[:, 2] > box.row0) & (boxes[:, 1] < box.col1) & (boxes[:, 3] > box.col0)
    return np.flatnonzero(meets & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))


def _quarters(box: Box) -> list[Box]:
    rows = (box.row0, box.row0 + (box.height + 1) // 2, box.row1)
    cols = (box.col0, box.col0 + (box.width + 1) // 2, box.col1)
    return [Box(rows[a], cols[b], rows[a + 1], cols[b + 1]) for a in (0, 1) for b in (0, 1)]


def _split_dense(box: Box, meeting: NDArray[np.intp], boxes: NDArray[np.int64], most: int, smallest: int) -> list[Box]:
    """``box``, or its quarters split in turn, while it meets more than ``most`` boxes and quartering helps."""
    if meeting.size <= most or (min(box.height, box.width) + 1) // 2 < smallest:
        return [box]
    quarters = [(q, meeting[boxes_meeting(boxes[meeting], q)]) for q in _quarters(box)]
    if max(m.size for _, m in quarters) >= meeting.size:  # a stack over one place: smaller chunks meet as many
        return [box]
    return [part for q, m in quarters if m.size for part in _split_dense(q, m, boxes, most, smallest)]


def density_chunks(grid: Grid, size: int, footprints: Sequence[Box], most: int, smallest: int) -> list[Box]:
    """Chunks of ``grid`` that meet a footprint, quartered where more than ``most`` footprints meet.

    :func:`chunks` of ``size`` pixels, keeping those that meet at least one footprint. A
    chunk that meets more than ``most`` footprints (many small scenes) is cut into quarters,
    recursively, into quarters of at least ``smallest`` pixels, as long as that lowers the count: what a chunk
    holds in memory (every image it meets) then stays bounded whatever the scene density.
    A stack of images over one place (a time series) keeps its chunks, which the statistics
    pass streams image by image. The quarters of a chunk follow each other (row-major within
    the chunk), so neighbouring reads stay together.
    """
    if smallest < 1:
        raise ParameterError(f"smallest chunk must be at least 1 pixel, got {smallest}")
    fps = box_array(footprints)
    out: list[Box] = []
    for chunk in chunks(grid, size):
        meeting = boxes_meeting(fps, chunk)
        if meeting.size:
            out.extend(_split_dense(chunk, meeting, fps, most, smallest))
    return out


def native_to_grid(
    info: RasterInfo | Grid, grid: Grid, box: Box, step: int = 32
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Common-grid pixel coordinates of the pixel centres of ``box`` on the raster's own grid.

    ``info`` is the raster (or any grid: a mosaic's, to evaluate a model's fields on it).

    Same-CRS rasters are mapped exactly (affine, and separable): the result is then two
    1-D arrays, grid rows of the box's rows and grid columns of its columns. Otherwise
    coordinates are transformed on a lattice every ``step`` pixels and interpolated
    bilinearly (far below a block in error for any smooth projection change), and the
    result is two 2-D arrays of shape ``(box.height, box.width)``.
    """
    a, _, c, _, e, f = info.transform
    ga, _, gc, _, ge, gf = grid.transform
    if same_crs(info.crs, grid.crs):
        x = a * (np.arange(box.col0, box.col1) + 0.5) + c
        y = e * (np.arange(box.row0, box.row1) + 0.5) + f
        return np.asarray((y - gf) / ge, dtype=np.float64), np.asarray((x - gc) / ga, dtype=np.float64)
    lr = np.unique(np.r_[np.arange(0, box.height, step), box.height - 1])
    lc = np.unique(np.r_[np.arange(0, box.width, step), box.width - 1])
    rr, cc = np.meshgrid(lr + box.row0 + 0.5, lc + box.col0 + 0.5, indexing="ij")
    xs, ys = transform(info.crs, grid.crs, (a * cc + c).ravel(), (e * rr + f).ravel())
    gcol = ((np.asarray(xs) - gc) / ga).reshape(rr.shape)
    grow = ((np.asarray(ys) - gf) / ge).reshape(rr.shape)
    fr = np.interp(np.arange(box.height), lr, np.arange(lr.size))
    fc = np.interp(np.arange(box.width), lc, np.arange(lc.size))
    coords = np.meshgrid(fr, fc, indexing="ij")
    rows = map_coordinates(grow, coords, order=1, mode="nearest")
    cols = map_coordinates(gcol, coords, order=1, mode="nearest")
    return rows, cols
