"""A :class:`~stacrrn.pipeline.inputs.plan.Plan` whose chunk reader reads an xarray object.

Pass 1 (:func:`~stacrrn.pipeline.passes.statistics.compute_statistics`) reads any source
through ``plan.read_chunk(box, images)``; here that slices the bands of a
:class:`~stacrrn.xarray.cube.Cube` to the chunk and the images, computes the slices (Dask's
synchronous scheduler inside the worker thread or Dask task, so pass 1 bounds concurrency as
it does for files) and returns float64 values with the pixels valid in every band. The
statistics, the solve and their checks are then the file jobs' own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import dask.base
import numpy as np
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from stacrrn.core.statistics import Layer
from stacrrn.errors import EmptyImageError, ParameterError, UnreadableRasterError
from stacrrn.io.grid import block_grid
from stacrrn.pipeline.inputs.pairs import pair_graph
from stacrrn.pipeline.inputs.plan import ChunkReader, Plan, clip_to_footprint
from stacrrn.types import Box
from stacrrn.xarray.cube import Cube, valid_of

Footprints = Literal["grid", "data"]
"""Each image's footprint: the whole grid, or the bounding box of its valid pixels (one more read)."""
FOOTPRINTS: tuple[Footprints, ...] = ("grid", "data")

_compute: Callable[..., tuple[Any, ...]] = dask.base.compute
"""``dask.compute`` (untyped)."""

MIN_CHUNK = 16
"""Smallest chunk edge of pass 1 (as for files)."""


def read_bands(cube: Cube, box: Box, images: Sequence[int]) -> list[NDArray[Any]]:
    """Each band of ``images`` over ``box``, computed: arrays ``(len(images), box.height, box.width)``."""
    window = {cube.dim: list(images), cube.y: slice(box.row0, box.row1), cube.x: slice(box.col0, box.col1)}
    parts = [band.isel(window).transpose(cube.dim, cube.y, cube.x).data for band in cube.bands]
    if any(dask.base.is_dask_collection(p) for p in parts):
        parts = list(_compute(*parts, scheduler="sync"))
    return [np.asarray(p) for p in parts]


def layers_of(cube: Cube, arrays: Sequence[NDArray[Any]]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Float64 values ``(images, bands, rows, cols)`` (0 where invalid) and validity in every band ``(images, ...)``."""
    valid = np.logical_and.reduce([valid_of(a, nd) for a, nd in zip(arrays, cube.nodata, strict=True)])
    values = np.stack(arrays, axis=1).astype(np.float64)
    values[np.broadcast_to(~valid[:, None], values.shape)] = 0.0
    return values, valid


def chunk_reader(cube: Cube, footprints: Sequence[Box]) -> ChunkReader:
    """The plan's reader: ``(box, images) -> {image: (values, valid)}`` from the cube's bands."""

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        if not images:
            return {}
        try:
            values, valid = layers_of(cube, read_bands(cube, box, images))
        except (RasterioError, OSError) as exc:
            names = ", ".join(cube.names[i] for i in images)
            raise UnreadableRasterError(f"cannot read {cube.dim} {names}: {str(exc).splitlines()[0][:200]}") from None
        return {i: clip_to_footprint((values[k], valid[k]), box, footprints[i]) for k, i in enumerate(images)}

    return read_chunk


def _edges(size: int, chunks: Sequence[int] | None, limit: int) -> list[tuple[int, int]]:
    """Chunk edges along one axis: the array's own chunks (cut to ``limit``), or steps of ``limit``."""
    spans = [size] if chunks is None else list(chunks)
    out: list[tuple[int, int]] = []
    start = 0
    for span in spans:
        out.extend((s, min(s + limit, start + span)) for s in range(start, start + span, limit))
        start += span
    return out


def plan_chunks(cube: Cube, footprints: Sequence[Box], chunk_size: int) -> list[Box]:
    """Chunks of pass 1: the first band's Dask chunks along ``y``/``x`` (cut to ``chunk_size``), or squares.

    Following the Dask chunks reads each of them once; a chunk larger than ``chunk_size`` is
    cut (and then read once per piece) so that memory stays bounded.

    Raises
    ------
    ParameterError
        For a ``chunk_size`` below :data:`MIN_CHUNK`.
    """
    if chunk_size < MIN_CHUNK:
        raise ParameterError(f"chunk size must be at least {MIN_CHUNK} pixels, got {chunk_size}")
    band = cube.bands[0]
    chunks = band.chunksizes if band.chunks is not None else {}
    rows = _edges(cube.grid.height, chunks.get(cube.y), chunk_size)
    cols = _edges(cube.grid.width, chunks.get(cube.x), chunk_size)
    boxes = [Box(r0, c0, r1, c1) for r0, r1 in rows for c0, c1 in cols]
    return [b for b in boxes if any(not b.intersect(fp).empty for fp in footprints)]


def data_footprints(cube: Cube) -> list[Box]:
    """Each image's bounding box of pixels valid in every band (reads the data once).

    Raises
    ------
    EmptyImageError
        If an image has no valid pixel.
    """
    valid = None
    for band, nodata in zip(cube.bands, cube.nodata, strict=True):
        ok = band.copy(data=_lazy_valid(band.data, nodata))
        valid = ok if valid is None else valid & ok
    assert valid is not None
    rows, cols = _compute(valid.any(cube.x).transpose(cube.dim, cube.y), valid.any(cube.y).transpose(cube.dim, cube.x))
    boxes = []
    for k, name in enumerate(cube.names):
        r, c = np.flatnonzero(rows.values[k]), np.flatnonzero(cols.values[k])
        if r.size == 0:
            raise EmptyImageError(f"{cube.dim} {name} has no valid pixel in every band; drop it from the data")
        boxes.append(Box(int(r[0]), int(c[0]), int(r[-1]) + 1, int(c[-1]) + 1))
    return boxes


def _lazy_valid(data: Any, nodata: float | None) -> Any:
    """Validity of a NumPy or Dask array, lazily for Dask."""
    if dask.base.is_dask_collection(data):
        return data.map_blocks(valid_of, nodata, dtype=bool)
    return valid_of(np.asarray(data), nodata)


def dataset_plan(
    cube: Cube,
    *,
    footprints: Footprints = "grid",
    chunk_size: int = 1024,
    block_size: float | None = None,
    n_blocks: int | None = None,
    mode: str = "mosaic",
    neighbours: int | None = None,
) -> Plan:
    """The plan of pass 1 over ``cube``: its grid, footprints, block grid, chunks and reader.

    Parameters
    ----------
    cube
        The images and bands.
    footprints
        ``grid``: every image covers the whole grid (a time series); ``data``: each image's
        bounding box of valid pixels (a mosaic, as separate files would have it; one more read).
    chunk_size
        Largest chunk edge of pass 1 (the square chunks of NumPy-backed data).
    block_size, n_blocks
        Block grid of the local step.
    mode, neighbours
        Pair graph (:func:`~stacrrn.pipeline.inputs.pairs.pair_graph`).

    Returns
    -------
    Plan
        Names are the images' labels; paths are ``<dim>=<label>``.

    Raises
    ------
    ParameterError
        For an unknown ``footprints``, a bad block grid, chunk size or pair graph.
    """
    if footprints not in FOOTPRINTS:
        raise ParameterError(f"unknown footprints= {footprints!r}; choose one of {', '.join(FOOTPRINTS)}")
    pairs = pair_graph(cube.steps, mode, neighbours)
    boxes = [cube.grid.box] * cube.steps if footprints == "grid" else data_footprints(cube)
    blocks = block_grid(cube.grid, block_size, n_blocks)
    identity: list[object] = [
        {"xarray": cube.dim, "names": list(cube.names), "bands": list(cube.labels), "nodata": list(cube.nodata)}
    ]
    return Plan(
        list(cube.names),
        [f"{cube.dim}={name}" for name in cube.names],
        list(range(1, len(cube.bands) + 1)),
        cube.grid,
        blocks,
        boxes,
        plan_chunks(cube, boxes, chunk_size),
        chunk_reader(cube, boxes),
        identity,
        pairs=pairs,
        dates=list(cube.dates),
    )
