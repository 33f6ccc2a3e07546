"""Plan a run over STAC items: lay out the common grid, read chunks with odc-stac (or per asset).

Each item is one image of the model; its selected bands may live in one multi-band asset or
in one asset per band (Landsat/Sentinel-2 style), at different resolutions. Pass 1 reads
single-band assets lazily on the common grid through odc-stac (dask-backed xarray, HTTP
range requests for ``s3://`` and ``https://`` COGs). odc-stac reads band by band, so a
multi-band asset (pixel-interleaved, as COGs are by default) would have every tile fetched
and decoded once per band; such assets, and assets with internal masks or alpha bands
(which odc-stac ignores), are read per asset with rasterio, all their bands at once. Pass 2
reads each asset on its own grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError, UnreadableRasterError
from stacrrn.io.grid import common_grid, footprint
from stacrrn.io.raster import RasterInfo, forget_remote_reads, is_remote, read_on_grid, remote_fault, same_crs
from stacrrn.io.retry import is_transient, retrying
from stacrrn.io.stac import (
    asset_href,
    item_href,
)
from stacrrn.io.stac_items import EXTENSIONS, json_nodata, projection_fields
from stacrrn.options import DEFAULT_CHUNK
from stacrrn.pipeline.inputs.pairs import pair_graph
from stacrrn.pipeline.inputs.plan import ChunkReader, Plan, clip_to_footprint, grid_layout, unique_names
from stacrrn.pipeline.inputs.stac_inputs import StacInputs, open_assets, spectral_bands
from stacrrn.pipeline.masks.cloud_masks import coarse_band_pad, with_quality_masks, with_spectral_masks
from stacrrn.pipeline.masks.s2cloudless_masks import S2CLOUDLESS_SETTINGS, with_s2cloudless_masks
from stacrrn.types import Box, Grid


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
            band = {"data_type": info.dtype, "nodata": json_nodata(info.nodata)}
            asset.extra_fields.update(projection_fields(info) | {"raster:bands": [band] * info.count})
            clone.add_asset(key, asset)
        clone.stac_extensions = sorted({*clone.stac_extensions, EXTENSIONS["proj"], EXTENSIONS["raster"]})
        out.append(clone)
    return out


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

    from stacrrn.io.storage import configure_cloud

    settings: dict[str, Any] = dict(configure_cloud())
    odc.stac.configure_rio(cloud_defaults=True, **settings)
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


def _band_nodata(inputs: StacInputs) -> NDArray[np.float64]:
    """Nodata value odc-stac gives each selected band (NaN where none: odc-stac then fills NaN).

    odc-stac loads a band with one nodata value, the first item's, and writes it wherever any
    item has its own nodata or no data: items that declare other values are masked right.
    """
    values = [inputs.assets[0][b.asset].nodata for b in inputs.selection.bands]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _chunk_reader(ds: xr.Dataset, inputs: StacInputs, footprints: list[Box]) -> ChunkReader:
    names = odc_band_names(inputs)
    nodata = _band_nodata(inputs)[:, None, None]
    remote = any(is_remote(h.path) for headers in inputs.assets for h in headers.values())
    fault = remote_fault if remote else is_transient

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        if not images:
            return {}
        sub = ds[names].isel(time=images, y=slice(box.row0, box.row1), x=slice(box.col0, box.col1))
        lazy = sub.to_array("band").transpose("time", "band", "y", "x").data
        ids = ", ".join(inputs.items[i].id for i in images)
        try:
            data = retrying(f"read item(s) {ids}", lambda: lazy.compute(scheduler="sync"), fault, forget_remote_reads)
        except (RasterioError, OSError) as exc:
            raise UnreadableRasterError(f"cannot read item(s) {ids}: {str(exc).splitlines()[0][:200]}") from None
        values = np.asarray(data)
        out: dict[int, Layer] = {}
        for k, i in enumerate(images):
            v = values[k]
            # odc-stac fills outside the item and keeps source nodata as is (not NaN) in float loads
            valid = np.all(np.isfinite(v) & ~(v == nodata), axis=0)
            out[i] = clip_to_footprint((np.where(valid, v, 0.0), valid), box, footprints[i])
        return out

    return read_chunk


def _per_asset(inputs: StacInputs) -> bool:
    """True when pass 1 must read per asset: a masked or alpha asset, or several bands in one asset."""
    selection = inputs.selection
    masked = any(h.has_mask or h.alpha for headers in inputs.assets for h in headers.values())
    return masked or any(len(positions) > 1 for positions in selection.assets.values())


def _asset_reader(inputs: StacInputs, grid: Grid, footprints: list[Box]) -> ChunkReader:
    """Per-asset rasterio reads on the common grid: every selected band of an asset in one read.

    Honours GDAL dataset masks and alpha bands as well as nodata values (as local rasters
    are read), and resamples bilinearly where an asset is not aligned with the grid (as
    odc-stac does).
    """
    selection = inputs.selection

    def read_image(i: int, box: Box) -> Layer:
        if len(selection.assets) == 1:  # one asset holds every band, in order: no copy
            ((key, positions),) = selection.assets.items()
            bands = [selection.bands[p].index for p in positions]
            layer = read_on_grid(inputs.assets[i][key], grid, box, bands, Resampling.bilinear)
            return clip_to_footprint(layer, box, footprints[i])
        values = np.zeros((len(selection.bands), box.height, box.width))
        valid = np.ones((box.height, box.width), dtype=bool)
        for key, positions in selection.assets.items():
            bands = [selection.bands[p].index for p in positions]
            v, ok = read_on_grid(inputs.assets[i][key], grid, box, bands, Resampling.bilinear)
            values[positions] = v
            valid &= ok
        return clip_to_footprint((values, valid), box, footprints[i])

    return lambda box, images: {i: read_image(i, box) for i in images}


def make_stac_plan(
    inputs: StacInputs,
    crs: str | None = None,
    resolution: float | None = None,
    block_size: float | None = None,
    n_blocks: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    mode: str = "mosaic",
    neighbours: int | None = None,
    cloud_mask: str = "none",
    reflectance: tuple[float, float] | None = None,
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
    cloud_mask, reflectance
        With ``spectral``, the spectral cloud test masks pass 1 (values turned into
        reflectance by ``reflectance = (scale, offset)``, default the bands' ``raster:bands``
        scale/offset). With ``s2cloudless``, the detector masks pass 1 from each item's
        Sentinel-2 L1C bands (:func:`~stacrrn.pipeline.masks.s2cloudless_masks.with_s2cloudless_masks`).
        Quality assets (``qa``/``auto``) come with ``inputs``.

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
    reader = (
        _asset_reader(inputs, grid, footprints)
        if _per_asset(inputs)
        else _chunk_reader(load_lazy(inputs, grid, chunk_size), inputs, footprints)
    )
    resolutions = [
        abs(h.transform[0])
        for headers in inputs.assets
        for key, h in headers.items()
        if key in inputs.selection.assets and same_crs(h.crs, grid.crs)
    ]
    qa_pad = coarse_band_pad(resolutions, grid)
    reader = with_quality_masks(reader, inputs.qa, grid, qa_pad)
    if cloud_mask == "spectral":
        reader = with_spectral_masks(reader, spectral_bands(inputs, reflectance), grid)
    elif cloud_mask == "s2cloudless":
        reader = with_s2cloudless_masks(reader, inputs, grid)
    identity: list[object] = [
        [it.id, it.properties.get("updated") or str(it.datetime), *ids]
        for it, ids in zip(items, inputs.identity, strict=True)
    ]
    identity.append(inputs.selection.labels)
    identity.append([None if q is None else [q.key, q.info.path, qa_pad] for q in inputs.qa])
    detector = {"s2cloudless": S2CLOUDLESS_SETTINGS} if cloud_mask == "s2cloudless" else {}
    identity.append({"cloud_mask": cloud_mask, "reflectance": reflectance} | detector)
    return Plan(
        names,
        [item_href(it) for it in items],
        list(range(1, len(inputs.selection.bands) + 1)),
        grid,
        blocks,
        footprints,
        covered,
        reader,
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
        Dask-backed, one time step per item, float64 with NaN where invalid (nodata or
        outside the item); one variable per band, named by its label (``assets`` as given, or
        the band's asset key / ``asset.N``).
    """
    from stacrrn.io.storage import configure_cloud

    configure_cloud()
    inputs = open_assets(items, assets)
    grid = common_grid([_finest(h) for h in inputs.assets], crs, resolution)
    ds = load_lazy(inputs, grid, chunk_size)
    for name, nodata in zip(odc_band_names(inputs), _band_nodata(inputs), strict=True):
        if np.isfinite(nodata):
            ds[name] = ds[name].where(ds[name] != nodata)
    labels = inputs.selection.labels
    if len(set(labels)) == len(labels):
        ds = ds.rename(dict(zip(odc_band_names(inputs), labels, strict=True)))
    return ds
