"""Register local rasters as STAC: COG assets plus items and a collection in a storage.

Used to publish sample scenes for the demo, tests and benchmarks, and by users whose imagery
is not catalogued yet (``stacrrn catalog``). Bands can stay in one multi-band asset or be
split into one single-band asset per band (the Landsat/Sentinel-2 layout).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import rasterio

from stacrrn.errors import ParameterError
from stacrrn.io.acquisition import acquisition_dates, format_datetime
from stacrrn.io.cog import write_cog
from stacrrn.io.output_keys import check_output_keys
from stacrrn.io.raster import RasterInfo, open_raster
from stacrrn.io.stac import COMMON_NAMES
from stacrrn.io.stac_items import RasterAsset, collection_of, raster_item, to_json_dict
from stacrrn.io.storage import Storage, configure_cloud, sha256_multihash

log = logging.getLogger(__name__)


def _band_dicts(names: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": n, "common_name": n} if n in COMMON_NAMES else {"name": n} for n in names]


def publish_raster(
    storage: Storage,
    local: Path,
    key: str,
    bands: Sequence[Mapping[str, Any]] = (),
    roles: tuple[str, ...] = ("data",),
    title: str | None = None,
    statistics: Sequence[Mapping[str, float]] = (),
    encoding: Sequence[Mapping[str, Any]] = (),
) -> RasterAsset:
    """Publish a finished local COG at ``key`` and describe it (header, size, checksum); the local file goes."""
    extra = {"file:size": local.stat().st_size, "file:checksum": sha256_multihash(local)}
    header = open_raster(local)
    href = storage.move_file(local, key)
    return RasterAsset(href, replace(header, path=href), bands, roles, title, statistics, extra, encoding)


def _publish_cog(storage: Storage, info: RasterInfo, bands: Sequence[int], key: str, tmp: Path) -> RasterAsset:
    local = tmp / Path(key).name
    with rasterio.open(info.path) as src:
        data = src.read(list(bands))
        mask = src.dataset_mask() > 0 if info.has_mask and info.nodata is None else None
    write_cog(local, data, info.grid, nodata=info.nodata, mask=mask)
    return publish_raster(storage, local, key)


def item_dates(
    paths: Sequence[str],
    datetimes: Sequence[dt.datetime] | None,
    pattern: str | None,
    warnings: list[str] | None = None,
) -> list[dt.datetime]:
    """The datetime of each raster's item: given, acquired (name or metadata), else now (with a warning).

    Raises
    ------
    ParameterError
        For ``datetimes`` of another length than ``paths``, both ``datetimes`` and ``pattern``,
        or a file name ``pattern`` does not match.
    """
    if datetimes is not None:
        if pattern is not None:
            raise ParameterError(
                "--datetime sets one datetime for every item, --datetime-from-name one per file: give only one of them"
            )
        if len(datetimes) != len(paths):
            raise ParameterError(f"{len(datetimes)} datetimes given for {len(paths)} rasters")
        return list(datetimes)
    found = acquisition_dates(paths, pattern)
    now = dt.datetime.now(dt.UTC)
    undated = [Path(p).name for p, a in zip(paths, found, strict=True) if a is None]
    if undated:
        message = now_warning(undated, len(paths), format_datetime(now))
        if warnings is None:
            log.warning("%s", message)
        else:
            warnings.append(message)
    return [now if a is None else a.when for a in found]


def now_warning(undated: Sequence[str], total: int, now: str) -> str:
    """What items stamped with the current time mean, and how to give them real dates."""
    how = (
        "to set real acquisition dates, give --datetime-from-name PATTERN (e.g. %Y%m%d for Landsat_20210326.tif), "
        "or --datetime for one datetime of every item"
    )
    if len(undated) == total:
        return (
            f"every item got the same datetime, now ({now}): no --datetime, no --datetime-from-name and no "
            f"acquisition date in the files' metadata, so a time series (run --mode timeseries) cannot order "
            f"them in time; {how}"
        )
    shown = ", ".join(undated[:5]) + (f" and {len(undated) - 5} more" if len(undated) > 5 else "")
    return f"{len(undated)} of {total} items have no acquisition date and got now ({now}): {shown}; {how}"


def catalog_rasters(
    paths: Sequence[str | os.PathLike[str]],
    out: str,
    collection_id: str,
    *,
    band_names: Sequence[str] | None = None,
    split_bands: bool = False,
    datetimes: Sequence[dt.datetime] | None = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
    datetime_from_name: str | None = None,
    warnings: list[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write each raster as COG asset(s) plus a STAC item into ``out``, and a collection.

    Parameters
    ----------
    paths
        Local rasters (one item each, named by file stem).
    out
        Folder or ``s3://bucket/prefix``.
    collection_id
        Collection id.
    band_names
        Names of the bands (``eo:common_name`` when they are common names); default ``b1, b2, ...``.
    split_bands
        One asset per band, keyed by band name (else one multi-band asset ``image``).
    datetimes, properties
        Per-raster datetime and extra properties. Without ``datetimes``, each item gets its
        raster's acquisition date (:func:`~stacrrn.io.acquisition.acquisition_dates`: from the
        file name with ``datetime_from_name``, else from metadata or a sidecar file) or, when
        it has none, the current time.
    datetime_from_name
        strftime-style pattern of the date in the file names (``%Y%m%d``); every name must hold one.
    warnings
        Receives a warning when items got the current time for want of a date (logged when ``None``).

    Returns
    -------
    tuple
        The collection and the items, as JSON dicts with absolute hrefs.

    Raises
    ------
    ParameterError
        For band names that do not fit, ``datetimes`` of another length than ``paths``, both
        ``datetimes`` and ``datetime_from_name``, or a file name the pattern does not match.
    """
    configure_cloud()
    storage = Storage(out)
    infos = [open_raster(p) for p in paths]
    check_output_keys([info.name for info in infos], [])
    names = list(band_names or [f"b{k}" for k in range(1, infos[0].count + 1)])
    if len(names) != infos[0].count:
        raise ParameterError(f"{len(names)} band names given for {infos[0].count} bands of {infos[0].path}")
    dates = item_dates([info.path for info in infos], datetimes, datetime_from_name, warnings)
    items = []
    with tempfile.TemporaryDirectory(prefix="stacrrn-catalog-") as tmpdir:
        tmp = Path(tmpdir)
        for k, info in enumerate(infos):
            if split_bands:
                assets = {
                    name: replace(
                        _publish_cog(storage, info, [b], f"{info.name}/{name}.tif", tmp), bands=_band_dicts([name])
                    )
                    for b, name in enumerate(names, start=1)
                }
            else:
                spec = _publish_cog(storage, info, list(range(1, info.count + 1)), f"{info.name}/image.tif", tmp)
                assets = {"image": replace(spec, bands=_band_dicts(names))}
            when = dates[k]
            props = dict(properties[k]) if properties else {}
            items.append(raster_item(info.name, when, assets, props, collection=collection_id))
    dicts = []
    for item in items:
        key = f"{item.id}/{item.id}.json"
        d = to_json_dict(item, storage.href(key), storage.href("collection.json"))
        storage.put_text(json.dumps(d), key)
        dicts.append(d)
    coll = to_json_dict(collection_of(collection_id, f"{len(items)} scenes catalogued by stacrrn", items))
    coll["links"] = [
        {"rel": "item", "href": storage.href(f"{d['id']}/{d['id']}.json"), "type": "application/geo+json"}
        for d in dicts
    ]
    storage.put_text(json.dumps(coll), "collection.json")
    storage.cleanup()
    return coll, dicts
