"""Inputs in another CRS and resolution are resampled to the common grid on the fly."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from stacrrn import match
from stacrrn.io.grid import common_grid, footprint
from stacrrn.io.raster import open_raster, read_on_grid
from tests.conftest import S2_TILES, needs_shared

pytestmark = needs_shared


def reprojected_copy(src_path, dst_path, crs, gain, res=None):
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=res
        )
        profile = src.profile
        profile.update(crs=crs, transform=transform, width=width, height=height, nodata=0, dtype="uint16")
        with rasterio.open(dst_path, "w", **profile) as dst:
            for b in range(1, src.count + 1):
                out = np.zeros((height, width), "float32")
                reproject(
                    (src.read(b) * gain).astype("float32"),
                    out,
                    src_transform=src.transform,
                    src_crs=src.crs,
                    dst_transform=transform,
                    dst_crs=crs,
                    resampling=Resampling.nearest,
                    src_nodata=None,
                    dst_nodata=0,
                )
                dst.write(np.clip(np.rint(out), 0, 65535).astype("uint16"), b)
    return dst_path


def test_other_crs_is_read_on_the_common_grid(tmp_path):
    other = reprojected_copy(S2_TILES[1], tmp_path / "utm.tif", "EPSG:32630", 1.0, res=12.0)
    infos = [open_raster(S2_TILES[0]), open_raster(other)]
    grid = common_grid(infos)
    assert grid.resolution == (10.0, 10.0)
    fp = footprint(infos[1], grid)
    values, valid = read_on_grid(infos[1], grid, fp, [1])
    direct, ok = read_on_grid(open_raster(S2_TILES[1]), grid, fp, [1])
    both = valid & ok
    assert both.mean() > 0.8
    rel = np.abs(values[0][both] - direct[0][both]).mean() / direct[0][both].mean()
    assert rel < 0.05


def test_gain_recovered_across_crs_and_resolution(tmp_path):
    other = reprojected_copy(S2_TILES[1], tmp_path / "utm.tif", "EPSG:32630", 1.2, res=10.0)
    result = match([S2_TILES[0], other], tmp_path / "out", references=[S2_TILES[0].stem], method="global", bands=[1, 4])
    gains = result.model.global_fit.gains
    np.testing.assert_allclose(gains[1] * 1.2, 1.0, atol=0.01)
    with rasterio.open(result.outputs[1].path) as out, rasterio.open(other) as src:
        assert out.crs == src.crs and out.shape == src.shape  # outputs stay on each input's own grid
