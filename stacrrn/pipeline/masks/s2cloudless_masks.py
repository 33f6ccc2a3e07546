"""``--cloud-mask s2cloudless``: Sentinel Hub's detector on the items' Sentinel-2 L1C bands in pass 1.

The ten detector bands are read on a coarse grid aligned with the common grid, padded by
the detector's averaging and dilation footprint so that a pixel's mask does not depend on
how the grid is cut into chunks; the mask is upsampled (nearest) and ANDed into validity.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pystac
from numpy.typing import NDArray
from rasterio.enums import Resampling

from stacrrn.core.s2cloudless import S2CLOUDLESS_BANDS, s2cloudless_band_id, s2cloudless_clear
from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError
from stacrrn.io.band_choice import asset_bands, is_raster
from stacrrn.io.raster import RasterInfo, open_raster, read_on_grid
from stacrrn.io.stac import asset_href, band_scaling, gdal_path
from stacrrn.pipeline.inputs.plan import ChunkReader
from stacrrn.pipeline.inputs.stac_inputs import StacInputs
from stacrrn.types import Box, Grid

S2CLOUDLESS_SETTINGS: dict[str, float] = {"resolution": 60.0, "threshold": 0.4, "average_over": 1, "dilation_size": 1}
"""How pass 1 runs ``s2cloudless``: pixel size (CRS units) it aims at, probability threshold,
and the radii (in coarse pixels) of its averaging and dilation discs.

The model is per pixel, so it runs on a grid about as coarse as the bands' coarsest (60 m,
36 times fewer predictions than 10 m). Its usual radii of 4 and 2 pixels are meant for 10 m
(40 and 20 m); at 60 m both round up to one pixel (the library's own defaults).
"""


def s2cloudless_assets(item: pystac.Item) -> dict[str, tuple[str, int]]:
    """Where the item keeps each band ``s2cloudless`` reads: band id -> ``(asset key, 1-based band)``.

    An asset whose key names a band (``B01``, ``b8a``, ``coastal``, ``nir08``...) holds it as its
    first band; otherwise bands are found by the ``name`` / ``eo:common_name`` of the raster
    data assets' band descriptions. Bands the item lacks are absent from the result.
    """
    found: dict[str, tuple[str, int]] = {}
    for key in item.assets:
        band = s2cloudless_band_id(key)
        if band is not None and band not in found:
            found[band] = (key, 1)
    for key, asset in item.assets.items():
        if not is_raster(asset):
            continue
        for index, described in enumerate(asset_bands(asset), start=1):
            for name in (described.get("name"), described.get("common_name"), described.get("eo:common_name")):
                band = s2cloudless_band_id(name) if isinstance(name, str) else None
                if band is not None and band not in found:
                    found[band] = (key, index)
    return found


def _missing_bands_error(item: pystac.Item, found: Mapping[str, object]) -> InputError:
    missing = ", ".join(f"{band} ({name})" for band, name in S2CLOUDLESS_BANDS.items() if band not in found)
    return InputError(
        f"item {item.id} lacks band(s) {missing}: --cloud-mask s2cloudless needs Sentinel-2 L1C items with bands "
        f"{' '.join(S2CLOUDLESS_BANDS)} (asset keys such as B01 or coastal, or eo:common_name); "
        "choose another --cloud-mask for other items"
    )


def _scaling(item: pystac.Item, key: str, index: int) -> tuple[float, float]:
    """``(scale, offset)`` from digital numbers to reflectance: ``raster:bands`` when given, else 1/10000."""
    return band_scaling(item.assets[key], index) or (1e-4, 0.0)


def coarse_grid(grid: Grid, pad: int) -> tuple[Grid, int, int]:
    """The grid ``s2cloudless`` runs on, aligned with ``grid``, with its row and column factors.

    Coarse pixel ``(r, c)`` covers rows ``r*fr .. r*fr+fr`` and columns ``c*fc .. c*fc+fc`` of
    ``grid``, with ``f = max(1, round(S2CLOUDLESS_SETTINGS["resolution"] / pixel size))``; the
    returned grid has ``pad`` more coarse pixels on every side, so coarse pixel ``(r, c)`` is
    its pixel ``(r + pad, c + pad)``.
    """
    target = S2CLOUDLESS_SETTINGS["resolution"]
    fc, fr = (max(1, round(target / size)) for size in grid.resolution)
    a, b, c, d, e, f = grid.transform
    transform = (a * fc, b, c - pad * fc * a, d, e * fr, f - pad * fr * e)
    width, height = math.ceil(grid.width / fc) + 2 * pad, math.ceil(grid.height / fr) + 2 * pad
    return Grid(grid.crs, transform, width, height), fr, fc


def with_s2cloudless_masks(reader: ChunkReader, inputs: StacInputs, grid: Grid) -> ChunkReader:
    """Also mark pixels invalid where ``s2cloudless`` finds cloud in the item's Sentinel-2 L1C bands.

    The detector's ten bands (:data:`~stacrrn.core.s2cloudless.S2CLOUDLESS_BANDS`) need not be
    among the bands normalized. Each chunk reads them (average resampling) on a coarse grid
    aligned with ``grid`` (:func:`coarse_grid`), padded by the averaging and dilation radii so
    that a pixel's mask does not depend on the chunking, turns digital numbers into
    reflectance (``raster:bands`` scale/offset, else 1/10000), runs the detector, and repeats
    each coarse pixel over the common-grid pixels it covers. Coarse pixels the bands do not
    cover are not clear. Asset headers are opened once per item, on its first chunk.

    Raises
    ------
    InputError
        When an item lacks one of the ten bands (checked from the STAC metadata, before any read).
    """
    settings = S2CLOUDLESS_SETTINGS
    average_over, dilation = int(settings["average_over"]), int(settings["dilation_size"])
    pad = average_over + dilation
    coarse, fr, fc = coarse_grid(grid, pad)
    places = []
    for item in inputs.items:
        found = s2cloudless_assets(item)
        if len(found) < len(S2CLOUDLESS_BANDS):
            raise _missing_bands_error(item, found)
        places.append(found)
    locks = [threading.Lock() for _ in inputs.items]
    headers: list[dict[str, RasterInfo] | None] = [None] * len(inputs.items)

    def open_headers(i: int) -> dict[str, RasterInfo]:
        with locks[i]:
            opened = headers[i]
            if opened is None:
                item = inputs.items[i]
                opened = {}
                for key in dict.fromkeys(key for key, _ in places[i].values()):
                    known = inputs.assets[i].get(key)
                    if known is None:
                        try:
                            known = replace(open_raster(gdal_path(asset_href(item, key))), name=f"{item.id}_{key}")
                        except InputError as exc:
                            raise type(exc)(f"item {item.id}, asset {key!r}: {exc}") from None
                    opened[key] = known
                headers[i] = opened
            return opened

    def clear_of(i: int, box: Box) -> NDArray[np.bool_]:
        item, found, infos = inputs.items[i], places[i], open_headers(i)
        r0, c0 = box.row0 // fr, box.col0 // fc
        padded = Box(r0, c0, -(-box.row1 // fr) + 2 * pad, -(-box.col1 // fc) + 2 * pad)
        stack = np.full((len(S2CLOUDLESS_BANDS), padded.height, padded.width), np.nan, dtype=np.float32)
        by_asset: dict[str, list[tuple[int, int]]] = {}
        for position, band in enumerate(S2CLOUDLESS_BANDS):
            key, index = found[band]
            by_asset.setdefault(key, []).append((position, index))
        for key, wanted in by_asset.items():
            values, valid = read_on_grid(infos[key], coarse, padded, [index for _, index in wanted], Resampling.average)
            for (position, index), dn in zip(wanted, values, strict=True):
                scale, offset = _scaling(item, key, index)
                stack[position] = np.where(valid, dn * scale + offset, np.nan)
        clear = s2cloudless_clear(stack, settings["threshold"], average_over, dilation)
        clear = clear[pad : clear.shape[0] - pad, pad : clear.shape[1] - pad]
        fine = np.repeat(np.repeat(clear, fr, axis=0), fc, axis=1)
        rows, cols = box.row0 - r0 * fr, box.col0 - c0 * fc
        return np.asarray(fine[rows : rows + box.height, cols : cols + box.width])

    def read_chunk(box: Box, images: list[int]) -> dict[int, Layer]:
        layers = reader(box, images)
        for i, (values, valid) in layers.items():
            if valid.any():  # no prediction for an item with no valid pixel in the chunk
                layers[i] = (values, valid & clear_of(i, box))
        return layers

    return read_chunk
