"""Plan a run over STAC items: open asset headers, lay out the common grid, read chunks with odc-stac.

Each item is one image of the model; its selected bands may live in one multi-band asset or
in one asset per band (Landsat/Sentinel-2 style), at different resolutions. Pass 1 reads
them lazily on the common grid through odc-stac (dask-backed xarray, HTTP range requests
for ``s3://`` and ``https://`` COGs); pass 2 reads each asset on its own grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pystac
import xarray as xr
from affine import Affine

from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.grid import common_grid, footprint
from stacrrn.io.raster import RasterInfo, open_raster
from stacrrn.io.stac import BandSelection, asset_href, gdal_path, item_href
from stacrrn.pipeline.parallel import imap_bounded
from stacrrn.pipeline.plan import DEFAULT_CHUNK, ChunkReader, Plan, clip_to_footprint, grid_layout, unique_names
from stacrrn.types import Box, Grid

MODES = ("mosaic", "timeseries")
"""Run modes: adjacent scenes (overlap graph) or one place at many dates (date graph)."""

PROJECTION_V2 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_V11 = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"


@dataclass(frozen=True)
class StacInputs:
    """The items of a run, the chosen bands, and each item's asset headers."""

    items: list[pystac.Item]
    selection: BandSelection
    assets: list[dict[str, RasterInfo]]


def open_assets(items: Sequence[pystac.Item], selection: BandSelection, workers: int = 4) -> StacInputs:
    """Read the header of every selected asset of every item (remote reads run concurrently).

    Raises
    ------
    InputError
        If an asset cannot be opened (missing, not a raster, no CRS), naming item and asset.
    """
    jobs = [(k, key) for k in range(len(items)) for key in selection.assets]

    def task(job: tuple[int, str]) -> tuple[int, str, RasterInfo]:
        k, key = job
        item = items[k]
        href = asset_href(item, key)
        try:
            info = open_raster(gdal_path(href))
        except InputError as exc:
            raise type(exc)(f"item {item.id}, asset {key!r}: {exc}") from None
        need = max(selection.bands[p].index for p in selection.assets[key])
        if info.count < need:
            raise InputError(f"item {item.id}, asset {key!r} has {info.count} band(s); band {need} was selected")
        return k, key, replace(info, name=f"{item.id}_{key}")

    headers: list[dict[str, RasterInfo]] = [{} for _ in items]
    for k, key, info in imap_bounded(task, jobs, max(1, workers)):
        headers[k][key] = info
    return StacInputs(list(items), selection, headers)


def pair_graph(n: int, mode: str, neighbours: int | None) -> frozenset[tuple[int, int]] | None:
    """The pair graph: every overlapping pair, or each date with its nearest dates.

    A mosaic, or a time series without ``neighbours``, uses every overlapping pair (``None``).
    A long time series (items sorted by date) pairs each date with its ``neighbours`` nearest
    dates on either side, so the cost grows linearly with the number of dates.

    Raises
    ------
    ParameterError
        For an unknown mode or fewer than one neighbour.
    """
    if mode not in MODES:
        raise ParameterError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
    if neighbours is not None and neighbours < 1:
        raise ParameterError(f"--neighbours must be at least 1, got {neighbours}")
    if mode == "mosaic" or neighbours is None or neighbours >= n - 1:
        return None
    return frozenset((i, j) for i in range(n) for j in range(i + 1, min(n, i + neighbours + 1)))


def _finest(headers: dict[str, RasterInfo]) -> RasterInfo:
    return min(headers.values(), key=lambda h: abs(h.transform[0] * h.transform[4]))


def odc_items(inputs: StacInputs) -> list[pystac.Item]:
    """Copies of the items with only the selected assets, described from their own headers.

    odc-stac takes band counts, data types, nodata and grids from ``raster:bands`` and the
    projection fields; taking them from the files makes loads independent of how complete
    the catalog's metadata is.
    """
    out = []
    for item, headers in zip(inputs.items, inputs.assets, strict=True):
        clone = item.clone()
        clone.assets = {}
        for key, info in headers.items():
            asset = item.assets[key].clone()
            asset.href = asset_href(item, key)
            epsg = _epsg(info.crs)
            asset.extra_fields.update(
                {
                    "raster:bands": [{"data_type": info.dtype, "nodata": _json_nodata(info.nodata)}] * info.count,
                    "proj:shape": [info.height, info.width],
                    "proj:transform": list(info.transform),
                    **({"proj:code": f"EPSG:{epsg}"} if epsg else {"proj:wkt2": info.crs, "proj:code": None}),
                }
            )
            clone.add_asset(key, asset)
        clone.stac_extensions = sorted({*clone.stac_extensions, PROJECTION_V2, RASTER_V11})
        out.append(clone)
    return out


def _json_nodata(value: float | None) -> float | str | None:
    if value is None or np.isfinite(value):
        return value
    return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def _epsg(crs: str) -> int | None:
    from rasterio.crs import CRS

    code = CRS.from_user_input(crs).to_epsg()
    return int(code) if code else None


def odc_band_names(inputs: StacInputs) -> list[str]:
    """odc-stac's name for each selected band (``asset`` or ``asset.N`` for multi-band assets)."""
    first = inputs.assets[0]
    return [b.asset if first[b.asset].count == 1 else b.odc_name for b in inputs.selection.bands]


def load_lazy(inputs: StacInputs, grid: Grid, chunk_size: int = DEFAULT_CHUNK) -> xr.Dataset:
    """The selected bands of every item, one time step per item, lazily on ``grid`` (float64, NaN = invalid).

    Parameters
    ----------
    inputs
        Items, bands and headers from :func:`open_assets`.
    grid
        The common grid.
    chunk_size
        Dask chunk edge in pixels.

    Returns
    -------
    xarray.Dataset
        One variable per band (odc-stac names), dims ``(time, y, x)`` in item order.
    """
    import odc.stac
    from odc.geo.geobox import GeoBox

    geobox = GeoBox((grid.height, grid.width), Affine(*grid.transform), grid.crs)
    return odc.stac.load(
        odc_items(inputs),
        bands=odc_band_names(inputs),
        groupby="id",
        geobox=geobox,
        chunks={"x": chunk_size, "y": chunk_size},
        dtype="float64",
        resampling="bilinear",
        preserve_original_order=True,
    )


def _chunk_reader(ds: xr.Dataset, names: list[str], footprints: list[Box]) -> ChunkReader:
    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        if not images:
            return {}
        sub = ds[names].isel(time=images, y=slice(box.row0, box.row1), x=slice(box.col0, box.col1))
        values = np.asarray(sub.to_array("band").transpose("time", "band", "y", "x").data.compute(scheduler="sync"))
        out: dict[int, Layer] = {}
        for k, i in enumerate(images):
            v = values[k]
            valid = np.all(np.isfinite(v), axis=0)
            out[i] = clip_to_footprint((np.where(valid, v, 0.0), valid), box, footprints[i])
        return out

    return read_chunk


def make_stac_plan(
    inputs: StacInputs,
    crs: str | None = None,
    resolution: float | None = None,
    block_size: float | None = None,
    n_blocks: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    mode: str = "mosaic",
    neighbours: int | None = None,
) -> Plan:
    """Lay out a run over STAC items: common grid, footprints, blocks, chunks, odc-stac reader.

    Parameters
    ----------
    inputs
        Items, bands and asset headers (:func:`open_assets`).
    crs, resolution
        Common grid (default: the first item's CRS and the finest resolution of any asset).
    block_size, n_blocks
        Block grid of the local step.
    chunk_size
        Chunk edge in common-grid pixels.
    mode, neighbours
        ``mosaic`` or ``timeseries``; for a time series, the number of nearest dates each
        date is paired with (default all pairs).

    Returns
    -------
    Plan
        The run's layout; ``paths`` are the items' hrefs.
    """
    items = inputs.items
    if len(items) < 2:
        raise InputError(f"normalization needs at least two items; the search selected {len(items)}")
    names = [it.id for it in items]
    unique_names(names, [item_href(it) for it in items])
    grid = common_grid([_finest(h) for h in inputs.assets], crs, resolution)
    footprints = [
        Box(
            min(fp.row0 for fp in fps),
            min(fp.col0 for fp in fps),
            max(fp.row1 for fp in fps),
            max(fp.col1 for fp in fps),
        )
        for fps in ([footprint(h, grid) for h in headers.values()] for headers in inputs.assets)
    ]
    blocks, covered = grid_layout(footprints, grid, block_size, n_blocks, chunk_size)
    ds = load_lazy(inputs, grid, chunk_size)
    identity: list[object] = [
        [it.id, it.properties.get("updated") or str(it.datetime), *[h.path for h in hs.values()]]
        for it, hs in zip(items, inputs.assets, strict=True)
    ]
    identity.append(inputs.selection.labels)
    return Plan(
        names,
        [item_href(it) for it in items],
        list(range(1, len(inputs.selection.bands) + 1)),
        grid,
        blocks,
        footprints,
        covered,
        _chunk_reader(ds, odc_band_names(inputs), footprints),
        identity,
        pairs=pair_graph(len(items), mode, neighbours),
    )


def load_items(
    items: Sequence[pystac.Item],
    assets: Sequence[str] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> xr.Dataset:
    """Items' bands lazily on their common grid, as stacrrn sees them (for notebooks).

    Parameters
    ----------
    items
        STAC items (e.g. from :func:`stacrrn.search_items`).
    assets
        Bands (asset keys, ``asset.N`` or ``eo:common_name``); default all raster bands.
    crs, resolution
        Common grid (default: first item's CRS, finest resolution).
    chunk_size
        Dask chunk edge.

    Returns
    -------
    xarray.Dataset
        Dask-backed, one time step per item, float64 with NaN where invalid.
    """
    from stacrrn.io.stac import select_bands
    from stacrrn.io.storage import configure_cloud

    configure_cloud()
    inputs = open_assets(items, select_bands(items, assets))
    grid = common_grid([_finest(h) for h in inputs.assets], crs, resolution)
    return load_lazy(inputs, grid, chunk_size)
