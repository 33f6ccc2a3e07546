"""Real Sentinel-2 and Landsat pixels as files and as xarray objects holding the very same pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from tests.conftest import S2_TILES, write_raster

BANDS = [1, 3, 5, 8]
"""Sentinel-2 bands used (blue, red, red edge 3, NIR of the 10-band tiles)."""
TILES = (0, 1, 4, 5)
"""A 2 x 2 block of the 4 x 4 tiles: every tile overlaps the three others (about 41 px)."""
TIMES = np.array(["2021-05-27", "2021-06-01", "2021-06-03", "2021-07-10"], "datetime64[ns]")
"""Labels of the images along ``time`` (made up: the tiles are one acquisition)."""
CHUNK = 128
"""Chunk edge of both jobs: several chunks per image, so that chunk merging is exercised."""
BLOCKS = 16


def dataset_of(
    stack: np.ndarray,
    transform: Affine,
    crs: str,
    times: np.ndarray,
    nodata: float | None = None,
    names: list[str] | None = None,
) -> xr.Dataset:
    """A Dataset ``(time, y, x)`` per band, as ``odc.stac.load`` returns, from ``(time, band, y, x)`` pixels."""
    geobox = GeoBox(stack.shape[2:], transform, crs)
    attrs = {} if nodata is None else {"nodata": nodata}
    names = names or [f"b{b}" for b in BANDS]
    data = {name: (("time", "y", "x"), stack[:, k], attrs) for k, name in enumerate(names)}
    return xr.Dataset(data, coords={"time": times, **xr_coords(geobox, crs_coord_name="spatial_ref")})


def stacked(ds: xr.Dataset) -> xr.DataArray:
    """The same pixels as a DataArray ``(time, band, y, x)``, as ``stackstac.stack`` returns."""
    return ds.to_array("band").transpose("time", "band", "y", "x").assign_attrs(nodata=ds["b1"].attrs.get("nodata"))


@dataclass
class S2Case:
    """Four real Sentinel-2 tiles with injected gains and offsets, as files and as a Dataset."""

    paths: list[Path]
    """One uint16 GeoTIFF per image, each on the common grid (nodata 0 outside its tile)."""
    tiles: list[Path]
    """One uint16 GeoTIFF per image on its own extent (no nodata)."""
    ds: xr.Dataset
    """The common-grid pixels: ``(time, y, x)`` per band, nodata 0."""
    gains: np.ndarray
    offsets: np.ndarray


def s2_case(tmp: Path) -> S2Case:
    """Distort four tiles by known gains/offsets and write them on one grid and on their own extents."""
    srcs = [rasterio.open(S2_TILES[k]) for k in TILES]
    res = srcs[0].res[0]
    x0, y1 = min(s.transform.c for s in srcs), max(s.transform.f for s in srcs)
    width = round((max(s.transform.c + s.width * res for s in srcs) - x0) / res)
    height = round((y1 - min(s.transform.f - s.height * res for s in srcs)) / res)
    transform = Affine(res, 0, x0, 0, -res, y1)
    crs = srcs[0].crs.to_string()
    rng = np.random.default_rng(27)
    gains, offsets = rng.uniform(0.8, 1.2, (4, len(BANDS))), rng.uniform(0, 100, (4, len(BANDS)))  # no clipping
    stack = np.zeros((len(srcs), len(BANDS), height, width), "uint16")
    paths, tiles = [], []
    for k, src in enumerate(srcs):
        distorted = src.read(BANDS).astype(np.float64) * gains[k][:, None, None] + offsets[k][:, None, None]
        tile = np.clip(np.rint(distorted), 1, 65535).astype("uint16")
        r0, c0 = round((y1 - src.transform.f) / res), round((src.transform.c - x0) / res)
        stack[k, :, r0 : r0 + src.height, c0 : c0 + src.width] = tile
        paths.append(write_raster(tmp / f"grid{k}.tif", stack[k], transform, 0, crs))
        tiles.append(write_raster(tmp / f"tile{k}.tif", tile, src.transform, None, crs))
        src.close()
    return S2Case(paths, tiles, dataset_of(stack, transform, crs, TIMES, nodata=0), gains, offsets)


@pytest.fixture(scope="package")
def s2(tmp_path_factory: pytest.TempPathFactory) -> S2Case:
    return s2_case(tmp_path_factory.mktemp("s2"))


@pytest.fixture(scope="package")
def s2_match(s2: S2Case, tmp_path_factory: pytest.TempPathFactory):
    """``stacrrn.match`` on the common-grid files, per method (run once each)."""
    from stacrrn import match

    out = tmp_path_factory.mktemp("match")
    return {
        method: match(s2.paths, out / method, method=method, workers=2, chunk_size=CHUNK, n_blocks=BLOCKS)
        for method in ("global", "global+local")
    }
