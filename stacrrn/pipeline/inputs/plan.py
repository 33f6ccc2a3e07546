"""Planning a run: inputs, common grid, footprints, block grid, chunks and a chunk reader.

A :class:`Plan` is what pass 1 needs, whatever the inputs are: local rasters (this module)
or STAC items read through odc-stac (:mod:`stacrrn.pipeline.loading.stac_plan`). Both give a
function that reads the images touching a chunk of the common grid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.acquisition import acquisition_dates
from stacrrn.io.files import absolute_path
from stacrrn.io.grid import block_grid, box_array, boxes_meeting, common_grid, density_chunks, footprint
from stacrrn.io.raster import RasterInfo, check_bands, open_raster, read_on_grid
from stacrrn.io.storage import object_identity
from stacrrn.options import DEFAULT_CHUNK
from stacrrn.pipeline.inputs.checks import check_rasters
from stacrrn.pipeline.inputs.pairs import date_order, pair_graph
from stacrrn.pipeline.inputs.pif_options import PifSetup
from stacrrn.types import BlockGrid, Box, Grid

T = TypeVar("T")

log = logging.getLogger(__name__)

ChunkReader = Callable[[Box, list[int]], dict[int, Layer]]
"""Reads images (by index) on a chunk of the common grid -> ``{index: (values, valid)}``."""


@dataclass(frozen=True)
class Plan:
    """What a run reads and how: the inputs on a common grid, cut into chunks.

    Attributes
    ----------
    names, paths
        Image names (unique) and locations (file paths or STAC item hrefs).
    bands
        1-based band positions of the model (for local rasters, the bands read).
    grid, blocks
        Common grid and the local step's block grid over it.
    footprints
        Each image's pixel box on the common grid.
    chunks
        Chunks of the common grid that meet at least one footprint.
    read_chunk
        Reader of the images touching a chunk.
    identity
        JSON-able identity of the inputs (paths, sizes, dates), for the statistics cache.
    infos
        The local rasters (empty for STAC inputs, whose assets are opened per item).
    pairs
        Overlap graph to compute (``None``: every overlapping pair).
    pif
        Pseudo-invariant feature selection and holdout of pass 1 (``None``: every pixel).
    dates
        Acquisition date of each image (``None``: unknown), when they were read: local rasters
        of a time series or with a file-name pattern; empty otherwise.
    """

    names: list[str]
    paths: list[str]
    bands: list[int]
    grid: Grid
    blocks: BlockGrid
    footprints: list[Box]
    chunks: list[Box]
    read_chunk: ChunkReader
    identity: list[object]
    infos: list[RasterInfo] = field(default_factory=list)
    pairs: frozenset[tuple[int, int]] | None = None
    pif: PifSetup | None = None
    dates: list[dt.datetime | None] = field(default_factory=list)

    @cached_property
    def _footprint_array(self) -> NDArray[np.int64]:
        return box_array(self.footprints)

    def images_in(self, box: Box) -> list[int]:
        """Indices of the images whose footprint meets ``box``, in index order."""
        return [int(i) for i in boxes_meeting(self._footprint_array, box)]

    def fingerprint(self) -> str:
        """Hash of everything pass 1 depends on (inputs' identity and masks, bands, grids, pairs, PIFs)."""
        payload = {
            "inputs": self.identity,
            "bands": self.bands,
            "grid": self.grid.to_dict(),
            "blocks": self.blocks.to_dict(),
            "pairs": None if self.pairs is None else sorted(self.pairs),
            "pif": None if self.pif is None else self.pif.describe(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clip_to_footprint(layer: Layer, box: Box, fp: Box) -> Layer:
    """Mark pixels of ``layer`` (covering ``box``) outside footprint ``fp`` invalid.

    Resampling may bleed a pixel beyond an image's footprint; the statistics must not see it.
    """
    values, valid = layer
    inside = box.intersect(fp).shift(-box.row0, -box.col0)
    clipped = np.zeros_like(valid)
    clipped[inside.row0 : inside.row1, inside.col0 : inside.col1] = valid[
        inside.row0 : inside.row1, inside.col0 : inside.col1
    ]
    return values, clipped


RUN_SIDE = 4
"""Chunks along each side of the square of neighbouring chunks that one task reads, column by
column, with a mosaic's rasters held open (:func:`~stacrrn.pipeline.passes.statistics.held_if_few`):
its scenes are not aligned with the common grid's chunks, and a chunk then decodes only the tiles
its neighbours above and to the left did not. Pass 1 of the 16 x 4096² benchmark, 2 workers:
7.1-7.8 s with runs of 4 chunks along a row, 6.8-6.9 s with squares of 4 x 4."""

RUNS_PER_THREAD = 4
"""Runs per worker thread at least: squares shrink (to 2 x 2, then single chunks) until there
are this many, so a small job keeps every worker busy to the end."""


def chunk_runs(boxes: Sequence[Box], threads: int = 1, held: Sequence[bool] | None = None) -> list[list[int]]:
    """Indices of ``boxes`` grouped into runs, one task each: the chunks of squares of chunks.

    ``boxes`` are chunks of the common grid in row-major order, or quarters of chunks
    (:func:`~stacrrn.io.grid.density_chunks`); the chunk edge is the largest box edge. A run
    holds the boxes of one square of :data:`RUN_SIDE` x :data:`RUN_SIDE` chunks, column by
    column; the side halves while there are fewer than :data:`RUNS_PER_THREAD` runs per
    thread. Boxes whose rasters are not held open (``held`` false: a time series' chunks, read
    one date at a time) gain nothing from their neighbours and form runs of their own. Runs come
    in the order of their first box; :func:`in_chunk_order` puts their results back in order.
    """
    if not boxes:
        return []
    edge = max(max(b.height, b.width) for b in boxes)
    alone = [[k] for k in range(len(boxes)) if held is not None and not held[k]]
    grouped = [k for k in range(len(boxes)) if held is None or held[k]]
    side = RUN_SIDE
    while True:
        cells: dict[tuple[int, int], list[int]] = {}
        for k in grouped:
            cells.setdefault((boxes[k].row0 // (edge * side), boxes[k].col0 // (edge * side)), []).append(k)
        runs = [sorted(run, key=lambda k: (boxes[k].col0, boxes[k].row0)) for run in cells.values()]
        if side == 1 or len(runs) + len(alone) >= RUNS_PER_THREAD * threads:
            return sorted(runs + alone, key=min)
        side //= 2


def in_chunk_order(runs: Sequence[Sequence[int]], results: Iterable[Sequence[T]]) -> Iterator[T]:
    """The per-chunk results of ``runs`` (one sequence per run, in run order) in chunk order.

    A result is yielded as soon as every chunk before it has been, so results are held only
    while an earlier chunk is still being computed.
    """
    pending: dict[int, T] = {}
    following = 0
    for run, values in zip(runs, results, strict=True):
        pending.update(zip(run, values, strict=True))
        while following in pending:
            yield pending.pop(following)
            following += 1


CHUNK_IMAGES = 6
"""Images a chunk meets at most, where quartering it can make it so (many small scenes): what
pass 1 and the mosaic hold in memory per chunk is then bounded whatever the number of scenes.
Chunks under more images (a time series' dates) are streamed image by image in pass 1."""

SMALLEST_CHUNK = 256
"""Edge in pixels below which a dense chunk is not quartered further (per-chunk overhead)."""


def grid_layout(
    footprints: list[Box], grid: Grid, block_size: float | None, n_blocks: int | None, chunk_size: int
) -> tuple[BlockGrid, list[Box]]:
    """Block grid over ``grid`` and the chunks that meet at least one footprint (:func:`density_chunks`)."""
    if chunk_size < 16:
        raise ParameterError(f"chunk size must be at least 16 pixels, got {chunk_size}")
    covered = density_chunks(grid, chunk_size, footprints, CHUNK_IMAGES, min(SMALLEST_CHUNK, chunk_size))
    return block_grid(grid, block_size, n_blocks), covered


def band_numbers(bands: Sequence[str] | None) -> list[int] | None:
    """1-based band numbers of local rasters from their text (``None`` stays ``None``).

    Raises
    ------
    ParameterError
        If a value is not an integer.
    """
    if bands is None:
        return None
    try:
        return [int(b) for b in bands]
    except ValueError:
        given = ",".join(bands)
        raise ParameterError(f"--bands of local rasters are band numbers like 1,2,3; got {given}") from None


def unique_names(names: Sequence[str], paths: Sequence[str]) -> None:
    """Raise :class:`InputError` if two inputs share a name."""
    seen: dict[str, str] = {}
    for name, path in zip(names, paths, strict=True):
        if name in seen:
            raise InputError(f"two inputs are both named {name!r} ({seen[name]}, {path}); rename one of them")
        seen[name] = path


def dated(
    infos: Sequence[RasterInfo], mode: str, pattern: str | None
) -> tuple[list[RasterInfo], list[dt.datetime | None]]:
    """Rasters with their acquisition dates, in date order for a time series.

    Dates are read for a time series or when a file-name ``pattern`` is given (else none, an
    empty list). A time series is sorted by date when every raster has one (rasters of the same
    date keep their order); otherwise, and for a mosaic, the order given is kept.

    Raises
    ------
    ParameterError
        If a file name does not match ``pattern``.
    """
    if mode != "timeseries" and pattern is None:
        return list(infos), []
    found = acquisition_dates([info.path for info in infos], pattern)
    dates = [None if a is None else a.when for a in found]
    order = date_order(dates) if mode == "timeseries" else list(range(len(infos)))
    sources = sorted({a.source for a in found if a is not None})
    log.info(
        "acquisition dates of %d of %d inputs (%s)%s",
        len(infos) - dates.count(None),
        len(infos),
        ", ".join(sources) or "none found",
        "; in date order" if order != list(range(len(infos))) else "",
    )
    return [infos[k] for k in order], [dates[k] for k in order]


def make_plan(
    paths: Sequence[str | os.PathLike[str]],
    bands: Sequence[int] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    block_size: float | None = None,
    n_blocks: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    *,
    mode: str = "mosaic",
    neighbours: int | None = None,
    datetime_from_name: str | None = None,
) -> Plan:
    """Open local rasters and lay out the common grid, block grid and chunks.

    Parameters
    ----------
    paths
        Input rasters (at least two).
    bands
        1-based band indexes to normalize (default: all; counts must then match).
    crs, resolution
        Common grid CRS and pixel size (default: first input's CRS, finest resolution).
    block_size, n_blocks
        Block grid of the local step, in CRS units or blocks along the longer side.
    chunk_size
        Chunk edge in common-grid pixels.
    mode, neighbours
        ``mosaic`` or ``timeseries``; a time series is put in date order (:func:`dated`) and,
        with ``neighbours``, each date is paired with that many nearest dates (default all pairs).
    datetime_from_name
        strftime-style pattern of the acquisition date in the file names (``%Y%m%d``);
        default: the rasters' metadata or sidecar files
        (:func:`~stacrrn.io.acquisition.acquisition_dates`).

    Returns
    -------
    Plan
        The run's layout; ``dates`` holds the acquisition dates when they were read.

    Raises
    ------
    InputError
        For fewer than two inputs, duplicate names, or any unreadable input.
    ParameterError
        For a bad pair graph, or a file name ``datetime_from_name`` does not match.
    """
    if chunk_size < 16:
        raise ParameterError(f"chunk size must be at least 16 pixels, got {chunk_size}")
    infos = [open_raster(absolute_path(p)) for p in paths]  # absolute: workers may run elsewhere
    if len(infos) < 2:  # after opening them: an unreadable input says so first
        raise InputError("normalization needs at least two overlapping images; got " + str(len(paths)))
    check_rasters([("", info) for info in infos])
    unique_names([i.name for i in infos], [i.path for i in infos])
    pairs = pair_graph(len(infos), mode, neighbours)
    infos, dates = dated(infos, mode, datetime_from_name)
    band_list = check_bands(infos, bands)
    grid = common_grid(infos, crs, resolution)
    footprints = [footprint(info, grid) for info in infos]
    blocks, covered = grid_layout(footprints, grid, block_size, n_blocks, chunk_size)

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        return {i: clip_to_footprint(read_on_grid(infos[i], grid, box, band_list), box, footprints[i]) for i in images}

    return Plan(
        [i.name for i in infos],
        [i.path for i in infos],
        band_list,
        grid,
        blocks,
        footprints,
        covered,
        read_chunk,
        [object_identity(i.path) for i in infos],
        infos,
        pairs=pairs,
        dates=dates,
    )
