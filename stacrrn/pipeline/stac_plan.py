"""Plan a run over STAC items: open asset headers, lay out the common grid, read chunks with odc-stac.

Each item is one image of the model; its selected bands may live in one multi-band asset or
in one asset per band (Landsat/Sentinel-2 style), at different resolutions. Pass 1 reads
them lazily on the common grid through odc-stac (dask-backed xarray, HTTP range requests
for ``s3://`` and ``https://`` COGs); pass 2 reads each asset on its own grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from stacrrn.core.masks import clear_from_qa, spectral_clear
from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError, ParameterError, UnreadableRasterError
from stacrrn.io.grid import common_grid, footprint
from stacrrn.io.raster import RasterInfo, open_raster, read_on_grid
from stacrrn.io.stac import (
    COMMON_NAMES,
    QA_KINDS,
    BandSelection,
    asset_bands,
    asset_href,
    find_qa_asset,
    gdal_path,
    item_href,
    select_bands,
)
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
    identity: list[list[object]] = field(default_factory=list)
    qa: list[QaAsset | None] = field(default_factory=list)


@dataclass(frozen=True)
class QaAsset:
    """An item's quality asset (e.g. Landsat ``qa_pixel``, Sentinel-2 ``scl``) and how to decode it."""

    key: str
    kind: str
    info: RasterInfo


CLOUD_MASKS = ("auto", "qa", "spectral", "none")
"""``--cloud-mask`` choices: the items' QA assets when every item has one / always, the
spectral test on the bands themselves, or nothing."""


def quality_assets(items: Sequence[pystac.Item], cloud_mask: str) -> list[tuple[str, str] | None]:
    """Each item's quality asset ``(key, kind)`` to mask pass 1 with, per the ``--cloud-mask`` choice.

    Raises
    ------
    ParameterError
        For an unknown choice.
    InputError
        With ``qa`` when an item has no quality asset.
    """
    if cloud_mask not in CLOUD_MASKS:
        raise ParameterError(f"unknown --cloud-mask {cloud_mask!r}; choose one of {', '.join(CLOUD_MASKS)}")
    if cloud_mask in ("none", "spectral"):
        return [None] * len(items)
    found = [find_qa_asset(it) for it in items]
    missing = [it.id for it, f in zip(items, found, strict=True) if f is None]
    if missing and cloud_mask == "qa":
        raise InputError(
            f"item {missing[0]} has no quality asset ({' or '.join(QA_KINDS)}); use --cloud-mask none or auto"
        )
    return [None] * len(items) if missing else found


def asset_identity(href: str) -> list[object]:
    """An asset's href with its size and ETag or modification time, when the store tells them."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(href)
        info = fs.info(path)
    except Exception:  # an identity is best effort: unknown stores and HEAD failures fall back to the href
        return [href]
    return [href, info.get("size"), info.get("ETag") or info.get("mtime") or info.get("LastModified")]


def open_assets(
    items: Sequence[pystac.Item], names: Sequence[str] | None = None, workers: int = 4, cloud_mask: str = "none"
) -> StacInputs:
    """Choose the bands and read the header of every selected asset of every item (concurrently).

    Band counts come from the headers where the STAC metadata does not describe an asset's
    bands, so a multi-band asset without ``eo:bands`` is not mistaken for a single band.

    Raises
    ------
    InputError
        If an asset cannot be opened (missing, not a raster, no CRS), naming item and asset,
        or if a band name resolves on no asset.
    """
    preliminary = select_bands(items, names)
    qa = quality_assets(items, cloud_mask)
    jobs = [(k, key) for k in range(len(items)) for key in preliminary.assets]
    jobs += [(k, found[0]) for k, found in enumerate(qa) if found is not None]

    def task(job: tuple[int, str]) -> tuple[int, str, RasterInfo, list[object]]:
        k, key = job
        item = items[k]
        href = asset_href(item, key)
        try:
            info = open_raster(gdal_path(href))
        except InputError as exc:
            raise type(exc)(f"item {item.id}, asset {key!r}: {exc}") from None
        return k, key, replace(info, name=f"{item.id}_{key}"), asset_identity(href)

    headers: list[dict[str, RasterInfo]] = [{} for _ in items]
    identity: list[list[object]] = [[] for _ in items]
    for k, key, info, ident in imap_bounded(task, jobs, max(1, workers)):
        headers[k][key] = info
        identity[k].append(ident)
    qa_assets = [None if f is None else QaAsset(f[0], f[1], headers[k].pop(f[0])) for k, f in enumerate(qa)]
    selection = select_bands(items, names, {key: h.count for key, h in headers[0].items()})
    for k, item in enumerate(items):
        for key, positions in selection.assets.items():
            need = max(selection.bands[p].index for p in positions)
            if headers[k][key].count < need:
                raise InputError(
                    f"item {item.id}, asset {key!r} has {headers[k][key].count} band(s); band {need} was selected"
                )
    return StacInputs(list(items), selection, headers, identity, qa_assets)


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


def _band_nodata(inputs: StacInputs) -> NDArray[np.float64]:
    """Nodata value of each selected band (NaN where none: odc-stac then fills with NaN)."""
    values = [inputs.assets[0][b.asset].nodata for b in inputs.selection.bands]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _chunk_reader(ds: xr.Dataset, inputs: StacInputs, footprints: list[Box]) -> ChunkReader:
    names = odc_band_names(inputs)
    nodata = _band_nodata(inputs)[:, None, None]

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        if not images:
            return {}
        sub = ds[names].isel(time=images, y=slice(box.row0, box.row1), x=slice(box.col0, box.col1))
        try:
            data = sub.to_array("band").transpose("time", "band", "y", "x").data.compute(scheduler="sync")
        except (RasterioError, OSError) as exc:
            ids = ", ".join(inputs.items[i].id for i in images)
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


def _masked_reader(inputs: StacInputs, grid: Grid, footprints: list[Box]) -> ChunkReader:
    """Per-asset rasterio reads on the common grid, for assets with internal masks or alpha bands.

    odc-stac knows nodata values but not GDAL dataset masks; this reader (the one local
    rasters use) honours both, asset by asset.
    """
    selection = inputs.selection

    def read_image(i: int, box: Box) -> Layer:
        values = np.zeros((len(selection.bands), box.height, box.width))
        valid = np.ones((box.height, box.width), dtype=bool)
        for key, positions in selection.assets.items():
            v, ok = read_on_grid(inputs.assets[i][key], grid, box, [selection.bands[p].index for p in positions])
            values[positions] = v
            valid &= ok
        return clip_to_footprint((values, valid), box, footprints[i])

    return lambda box, images: {i: read_image(i, box) for i in images}


def _with_quality_masks(reader: ChunkReader, inputs: StacInputs, grid: Grid) -> ChunkReader:
    """Also mark pixels invalid where the item's quality asset flags cloud, shadow, snow, fill..."""
    if not any(inputs.qa):
        return reader

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        for i, (values, valid) in layers.items():
            qa = inputs.qa[i]
            if qa is not None:
                flags, inside = read_on_grid(qa.info, grid, box, [1])  # nearest: flags are not numbers
                layers[i] = (values, valid & inside & clear_from_qa(qa.kind, flags[0].astype(np.int64)))
        return layers

    return read_chunk


def band_common_names(inputs: StacInputs) -> list[str | None]:
    """``eo:common_name`` of each selected band (from the first item's asset metadata), or ``None``."""
    out: list[str | None] = []
    for ref in inputs.selection.bands:
        described = asset_bands(inputs.items[0].assets[ref.asset])
        band = described[ref.index - 1] if ref.index <= len(described) else {}
        out.append(
            band.get("common_name") or band.get("eo:common_name") or (ref.label if ref.label in COMMON_NAMES else None)
        )
    return out


def reflectance_scaling(inputs: StacInputs, position: int) -> tuple[float, float] | None:
    """``(scale, offset)`` turning a band's values into reflectance, from its ``raster:bands`` metadata."""
    ref = inputs.selection.bands[position]
    bands = inputs.items[0].assets[ref.asset].extra_fields.get("raster:bands") or []
    band = bands[ref.index - 1] if ref.index <= len(bands) and isinstance(bands[ref.index - 1], dict) else {}
    if "scale" not in band and "offset" not in band:
        return None
    return float(band.get("scale", 1.0)), float(band.get("offset", 0.0))


def _with_spectral_masks(
    reader: ChunkReader, inputs: StacInputs, reflectance: tuple[float, float] | None
) -> ChunkReader:
    """Also mark pixels invalid where the spectral cloud test finds cloud (blue, red and optional green)."""
    names = band_common_names(inputs)
    missing = [n for n in ("blue", "red") if n not in names]
    if missing:
        raise InputError(
            f"--cloud-mask spectral needs bands with eo:common_name {' and '.join(missing)} among --assets "
            f"(selected: {', '.join(inputs.selection.labels)})"
        )
    blue, red = names.index("blue"), names.index("red")
    green = names.index("green") if "green" in names else None
    scaling = reflectance or reflectance_scaling(inputs, blue)
    if scaling is None:
        raise InputError(
            "--cloud-mask spectral needs reflectance: the blue asset has no raster:bands scale/offset; "
            "pass --reflectance-scale (and --reflectance-offset)"
        )
    scale, offset = scaling

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        for i, (v, valid) in layers.items():
            rho = v * scale + offset
            clear = spectral_clear(rho[blue], rho[red], green=None if green is None else rho[green])
            layers[i] = (v, valid & clear)
        return layers

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
        scale/offset). Quality assets (``qa``/``auto``) come with ``inputs``.

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
    masked = any(h.has_mask or h.alpha for headers in inputs.assets for h in headers.values())
    reader = (
        _masked_reader(inputs, grid, footprints)
        if masked
        else _chunk_reader(load_lazy(inputs, grid, chunk_size), inputs, footprints)
    )
    reader = _with_quality_masks(reader, inputs, grid)
    if cloud_mask == "spectral":
        reader = _with_spectral_masks(reader, inputs, reflectance)
    identity: list[object] = [
        [it.id, it.properties.get("updated") or str(it.datetime), *ids]
        for it, ids in zip(items, inputs.identity, strict=True)
    ]
    identity.append(inputs.selection.labels)
    identity.append([None if q is None else [q.key, q.info.path] for q in inputs.qa])
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
        Dask-backed, one time step per item, float64 with NaN where invalid.
    """
    from stacrrn.io.storage import configure_cloud

    configure_cloud()
    inputs = open_assets(items, assets)
    grid = common_grid([_finest(h) for h in inputs.assets], crs, resolution)
    return load_lazy(inputs, grid, chunk_size)
