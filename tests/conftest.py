"""Shared fixtures: real imagery from ../shared/data with known, injected distortions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
S2_TILES = sorted((SHARED / "sentinel2_aber_tiles_4x4").glob("*.tif"))
BAHAMAS = sorted((SHARED / "landsat7_bahamas_quadrants").glob("rgb[1-4].tif"))

needs_shared = pytest.mark.skipif(not S2_TILES, reason="../shared/data (real sample imagery) is not present")

Distortion = Callable[[int, np.ndarray], np.ndarray]


def write_raster(
    path: Path,
    data: np.ndarray,
    transform: rasterio.Affine,
    nodata: float | None = None,
    crs: str = "EPSG:32633",
    **profile: object,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF in its own dtype."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=str(data.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
        **profile,
    ) as dst:
        dst.write(data)
    return path


def write_like(src_path: Path, dst_path: Path, data: np.ndarray, **profile_updates: object) -> Path:
    """Write ``data`` with the georeferencing of ``src_path``."""
    with rasterio.open(src_path) as src:
        profile = src.profile
    profile.update(count=data.shape[0], dtype=str(data.dtype), **profile_updates)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path


def read(path: Path | str, bands: list[int] | None = None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(bands).astype(np.float64)


def tile_grid_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalized coordinates in [-1, 1] of pixel centres (x, y)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    return (x + 0.5) / w * 2 - 1, (y + 0.5) / h * 2 - 1


def distort_tiles(
    tmp: Path, tiles: list[Path], bands: list[int], distortion: Distortion, dtype: str = "float32"
) -> tuple[list[Path], list[np.ndarray]]:
    """Apply ``distortion(k, truth)`` to each tile; return new paths and the truths."""
    paths, truths = [], []
    for k, tile in enumerate(tiles):
        truth = read(tile, bands)
        out = distortion(k, truth)
        if np.issubdtype(np.dtype(dtype), np.integer):
            out = np.clip(np.rint(out), 1, np.iinfo(dtype).max)
        paths.append(write_like(tile, tmp / f"t{k:02d}.tif", out.astype(dtype), nodata=None))
        truths.append(truth)
    return paths, truths
