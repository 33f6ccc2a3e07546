"""Shared fixtures: real imagery from ../shared/data with known, injected distortions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows

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


# --- real services and STAC helpers --------------------------------------------------------

SCHEMAS = SHARED.parent / "stac-schemas"
LOCAL_SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas"  # datacube v2.2.0 (see PROVENANCE.txt)


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 for the whole session (its variables set in os.environ)."""
    from stacrrn.services import LoopbackS3

    with LoopbackS3() as server:
        yield server


@pytest.fixture
def bucket(s3, request):
    """A fresh bucket per test (GDAL caches S3 listings, so names are never reused)."""
    import uuid

    name = f"t-{request.node.name[:30].lower().replace('_', '-')}-{uuid.uuid4().hex[:6]}".replace("[", "").replace(
        "]", ""
    )
    s3.create_bucket(name)
    return name


def validate_stac(obj: dict) -> list[str]:
    """Validate an item or collection offline against core STAC 1.1 and its extensions' schemas."""
    import json

    from jsonschema import Draft7Validator
    from jsonschema.exceptions import best_match
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource

    schemas = get_local_schema_cache()
    for folder in (SCHEMAS, LOCAL_SCHEMAS):
        index = json.loads((folder / "index.json").read_text())
        schemas |= {url: json.loads((folder / rel).read_text()) for url, rel in index.items()}
    registry = Registry().with_resources((url, Resource.from_contents(s)) for url, s in schemas.items())
    kind = "item" if obj.get("type") == "Feature" else "collection"
    core = f"https://schemas.stacspec.org/v1.1.0/{kind}-spec/json-schema/{kind}.json"
    errors = []
    for url in [core, *obj.get("stac_extensions", [])]:
        validator = Draft7Validator(schemas[url.rstrip("#")], registry=registry)
        if (error := best_match(validator.iter_errors(obj))) is not None:
            errors.append(f"{url} at {error.json_path}: {error.message}")
    return errors


needs_schemas = pytest.mark.skipif(not SCHEMAS.exists(), reason="../shared/stac-schemas is not present")


def cut_tiles(
    scene: Path, out: Path, distortion: Distortion, size: int = 450, step: int = 320
) -> tuple[list[Path], list[np.ndarray]]:
    """2 x 2 overlapping tiles of a real scene (float32, nodata 0), each ``distortion(k, truth)``.

    Returns the tile paths and the truths (0 where the scene is nodata).
    """
    out.mkdir(parents=True, exist_ok=True)
    paths, truths = [], []
    with rasterio.open(scene) as src:
        for k, (row, col) in enumerate([(0, 0), (0, step), (step, 0), (step, step)]):
            window = rasterio.windows.Window(col, row, size, size)
            truth = src.read(window=window).astype(np.float64)
            valid = src.read_masks(1, window=window) > 0
            data = np.where(valid, np.maximum(distortion(k, truth), 1.0), 0.0).astype("float32")
            path = write_raster(out / f"t{k}.tif", data, src.window_transform(window), 0.0, src.crs.to_string())
            paths.append(path)
            truths.append(np.where(valid, truth, 0.0))
    return paths, truths
