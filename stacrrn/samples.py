"""Sample scenes stacrrn generates itself: a demo and test mosaic with known distortions.

A multi-band landscape is synthesized from smooth random fields (land cover classes with
distinct spectra, texture, a river), cut into overlapping tiles, and each tile is given
a known per-band gain and offset and, optionally, a smooth multiplicative gradient. The
undistorted truth is returned so results can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

F64 = NDArray[np.float64]

SPECTRA = np.array(
    [
        [600.0, 900.0, 700.0, 3500.0],  # vegetation
        [1200.0, 1500.0, 1700.0, 2400.0],  # soil
        [900.0, 800.0, 500.0, 300.0],  # water
        [1800.0, 1900.0, 2000.0, 2300.0],  # built-up
    ]
)
"""Mean uint16 digital numbers of four cover classes in bands blue, green, red, NIR."""


@dataclass(frozen=True)
class SampleMosaic:
    """Paths of the written tiles and what was done to them."""

    paths: list[Path]
    gains: F64
    offsets: F64
    truth: list[F64]
    reference: str


def landscape(height: int, width: int, seed: int = 0) -> F64:
    """Synthesize a 4-band uint16-range landscape ``(4, height, width)`` (float64)."""
    rng = np.random.default_rng(seed)
    fields = np.stack([gaussian_filter(rng.normal(size=(height, width)), 24) for _ in SPECTRA])
    cover = fields.argmax(axis=0)
    img = SPECTRA[cover].transpose(2, 0, 1)
    texture = gaussian_filter(rng.normal(size=(height, width)), 1.5)
    img = img * (1 + 0.6 * texture / texture.std() * 0.15)
    y = np.arange(height)[:, None]
    river = np.abs(np.arange(width)[None, :] - (width * 0.4 + 0.15 * width * np.sin(y / height * 6))) < 6
    img[:, river] = SPECTRA[2][:, None]
    return np.asarray(np.clip(img, 1, 65535), dtype=np.float64)


def write_sample_mosaic(
    folder: Path,
    tiles: int = 3,
    tile_size: int = 256,
    overlap: int = 48,
    gradient: float = 0.0,
    seed: int = 0,
) -> SampleMosaic:
    """Write ``tiles x tiles`` overlapping uint16 GeoTIFFs with known distortions.

    Parameters
    ----------
    folder
        Where the tiles go (created).
    tiles
        Tiles per side.
    tile_size, overlap
        Tile edge and overlap in pixels.
    gradient
        Amplitude of a planar multiplicative gradient ``1 + gradient * p`` (random direction
        per tile, ``p`` in [-1, 1]); 0 for none.
    seed
        Random seed.

    Returns
    -------
    SampleMosaic
        Tile paths, injected gains/offsets (tile 0 is the undistorted reference) and truth.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    step = tile_size - overlap
    size = step * (tiles - 1) + tile_size
    scene = landscape(size, size, seed)
    n = tiles * tiles
    gains = rng.uniform(0.8, 1.2, (n, 4))
    offsets = rng.uniform(-150, 150, (n, 4))
    gains[0], offsets[0] = 1.0, 0.0
    paths, truth = [], []
    yy, xx = np.mgrid[0:tile_size, 0:tile_size]
    for k in range(n):
        r0, c0 = (k // tiles) * step, (k % tiles) * step
        t = scene[:, r0 : r0 + tile_size, c0 : c0 + tile_size]
        angle = rng.uniform(0, 2 * np.pi)
        p = np.cos(angle) * (2 * (xx + 0.5) / tile_size - 1) + np.sin(angle) * (2 * (yy + 0.5) / tile_size - 1)
        g = 1 + (gradient if k else 0.0) * p
        img = (t * gains[k][:, None, None] + offsets[k][:, None, None]) * g
        transform = Affine(10.0, 0, 500000.0 + 10.0 * c0, 0, -10.0, 4500000.0 - 10.0 * r0)
        path = folder / f"tile_{k:02d}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=tile_size,
            height=tile_size,
            count=4,
            dtype="uint16",
            nodata=0,
            crs="EPSG:32633",
            transform=transform,
            tiled=True,
            blockxsize=256,
            blockysize=256,
        ) as dst:
            dst.write(np.clip(np.rint(img), 1, 65535).astype("uint16"))
            dst.descriptions = ("blue", "green", "red", "nir")
        paths.append(path)
        truth.append(t)
    return SampleMosaic(paths, gains, offsets, truth, "tile_00")


def distort_rasters(paths: list[Path], folder: Path, seed: int = 0) -> SampleMosaic:
    """Copy real rasters into ``folder`` with known per-band gains (0.8-1.2) and offsets injected.

    Offsets are up to +-10 % of each band's mean; the first raster stays untouched (the
    reference). Outputs are float32 so no value clips; the originals are the truth (held in
    memory: meant for demo-sized imagery).

    Returns
    -------
    SampleMosaic
        Distorted copies, the injected gains/offsets and the truth.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 2)
    out, truths, gains, offsets = [], [], [], []
    for k, path in enumerate(paths):
        with rasterio.open(path) as src:
            profile = src.profile
            truth = src.read().astype(np.float64)
            valid = src.read_masks() > 0
        n = truth.shape[0]
        g = np.ones(n) if k == 0 else rng.uniform(0.8, 1.2, n)
        mean = np.array([truth[b][valid[b]].mean() if valid[b].any() else 0.0 for b in range(n)])
        o = np.zeros(n) if k == 0 else rng.uniform(-0.1, 0.1, n) * np.abs(mean)
        data = np.where(valid, truth * g[:, None, None] + o[:, None, None], profile.get("nodata") or 0)
        profile.update(driver="GTiff", dtype="float32")
        target = folder / Path(path).name
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(data.astype(np.float32))
        out.append(target)
        truths.append(truth)
        gains.append(g)
        offsets.append(o)
    return SampleMosaic(out, np.array(gains), np.array(offsets), truths, out[0].stem)
