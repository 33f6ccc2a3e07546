"""Build STAC items and collections describing rasters (inputs we register, outputs we write).

Items carry the projection (v2), raster (v1.1), eo (v1.1), file (v2.1) and processing
(v1.2) extensions, validated offline against the official schemas in the tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pystac
from pystac.utils import str_to_datetime
from rasterio.crs import CRS
from rasterio.warp import transform_bounds, transform_geom

from stacrrn.io.raster import RasterInfo

EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class RasterAsset:
    """A raster to describe as an asset: where it is, its header, and what its bands are."""

    href: str
    info: RasterInfo
    bands: Sequence[Mapping[str, Any]] = ()
    roles: tuple[str, ...] = ("data",)
    title: str | None = None
    statistics: Sequence[Mapping[str, float]] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    encoding: Sequence[Mapping[str, Any]] = ()
    """Per band, ``raster:bands`` fields saying what the values mean (``scale``, ``offset``, ``unit``...)."""


def _bounds(info: RasterInfo) -> tuple[float, float, float, float]:
    a, b, c, d, e, f = info.transform
    xs = [c, c + a * info.width, c + b * info.height, c + a * info.width + b * info.height]
    ys = [f, f + d * info.width, f + e * info.height, f + d * info.width + e * info.height]
    return min(xs), min(ys), max(xs), max(ys)


def footprint_geometry(info: RasterInfo) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon (EPSG:4326, densified edges) and bbox of a raster's extent."""
    w, s, e, n = _bounds(info)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    geom = transform_geom(info.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, antimeridian_cutting=True)
    bbox = list(transform_bounds(CRS.from_user_input(info.crs), "EPSG:4326", w, s, e, n, densify_pts=21))
    return dict(geom), bbox


def projection_fields(info: RasterInfo) -> dict[str, Any]:
    """``proj:code`` (or ``proj:wkt2``), ``proj:shape`` and ``proj:transform`` of a raster."""
    epsg = CRS.from_user_input(info.crs).to_epsg()
    out: dict[str, Any] = {"proj:code": f"EPSG:{epsg}" if epsg else None}
    if not epsg:
        out["proj:wkt2"] = info.crs
    return out | {"proj:shape": [info.height, info.width], "proj:transform": list(info.transform)}


def json_nodata(value: float | None) -> float | str | None:
    """A nodata value as STAC writes it: non-finite values as the strings nan, inf and -inf."""
    if value is None or (value == value and abs(value) != float("inf")):
        return value
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


def asset_of(spec: RasterAsset) -> pystac.Asset:
    """A COG asset with projection, raster (data type, nodata, encoding, statistics) and eo band fields."""
    raster_bands = []
    for k in range(spec.info.count):
        band: dict[str, Any] = {"data_type": spec.info.dtype}
        if k < len(spec.encoding):
            band |= dict(spec.encoding[k])
        if spec.info.nodata is not None:
            band["nodata"] = json_nodata(spec.info.nodata)
        if k < len(spec.statistics) and spec.statistics[k]:
            band["statistics"] = dict(spec.statistics[k])
        raster_bands.append(band)
    extra: dict[str, Any] = projection_fields(spec.info) | {"raster:bands": raster_bands}
    if spec.bands:
        extra["eo:bands"] = [dict(b) for b in spec.bands]
    extra |= dict(spec.extra)
    return pystac.Asset(spec.href, spec.title, media_type=COG, roles=list(spec.roles), extra_fields=extra)


def raster_item(
    item_id: str,
    when: dt.datetime,
    assets: Mapping[str, RasterAsset],
    properties: Mapping[str, Any] | None = None,
    geometry: tuple[dict[str, Any], list[float]] | None = None,
    collection: str | None = None,
) -> pystac.Item:
    """An item whose assets are rasters described from their headers.

    Parameters
    ----------
    item_id, when
        Item id and datetime.
    assets
        Asset key -> raster.
    properties
        Extra properties (e.g. ``eo:cloud_cover``, ``platform``).
    geometry
        GeoJSON geometry and bbox; default the first asset's extent.
    collection
        Collection id.
    """
    geom, bbox = geometry or footprint_geometry(next(iter(assets.values())).info)
    item = pystac.Item(item_id, geom, bbox, when, dict(properties or {}), collection=collection)
    for key, spec in assets.items():
        item.add_asset(key, asset_of(spec))
    used = {"proj", "raster"} | ({"eo"} if any(s.bands for s in assets.values()) else set())
    used |= {"file"} if any("file:size" in s.extra for s in assets.values()) else set()
    used |= {"processing"} if any(k.startswith("processing:") for k in item.properties) else set()
    item.stac_extensions = sorted({*item.stac_extensions, *(EXTENSIONS[u] for u in used)})
    return item


def collection_of(
    collection_id: str, description: str, items: Sequence[pystac.Item | Mapping[str, Any]], license: str = "other"
) -> pystac.Collection:
    """A collection whose extent covers ``items`` (pystac items or item JSON)."""
    boxes, times = [], []
    for it in items:
        d = it.to_dict(transform_hrefs=False) if isinstance(it, pystac.Item) else it
        if d.get("bbox"):
            boxes.append(d["bbox"])
        props = d.get("properties", {})
        when = props.get("datetime") or props.get("start_datetime")
        if when:
            times.append(str_to_datetime(when))
    bbox = (
        [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
        if boxes
        else [-180.0, -90.0, 180.0, 90.0]
    )
    extent = pystac.Extent(
        pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[min(times, default=None), max(times, default=None)]])
    )
    return pystac.Collection(collection_id, description, extent, license=license)


def to_json_dict(
    obj: pystac.Item | pystac.Collection, self_href: str | None = None, collection_href: str | None = None
) -> dict[str, Any]:
    """The object's JSON with absolute hrefs and only links that resolve outside this process.

    An item names its collection by a ``collection`` link (required with the ``collection``
    field) pointing at ``collection_href``.
    """
    d = obj.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [link for link in d.get("links", []) if link.get("rel") not in ("root", "parent", "collection")]
    if collection_href:
        d["links"].append({"rel": "collection", "href": collection_href, "type": "application/json"})
    if self_href:
        d["links"].append({"rel": "self", "href": self_href, "type": "application/json"})
    return d
