"""RGBA inputs: the alpha band is a mask, not data, in native and resampled reads."""

from __future__ import annotations

import numpy as np
import rasterio
import rasterio.vrt
from rasterio.transform import from_origin

from stacrrn import match
from tests.conftest import write_raster


def rgba(path, data, crs, transform):
    return write_raster(path, data, transform, crs=crs, photometric="RGB", alpha="YES")


def test_rgba_inputs_in_two_crs(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(20, 200, (3, 60, 100)).astype("uint8")
    a = np.concatenate([base[:, :, :60], np.full((1, 60, 60), 255, "uint8")])
    a[3, :5] = 0  # transparent rows
    b = np.concatenate([np.clip(base[:, :, 40:] * 1.1, 0, 254).astype("uint8"), np.full((1, 60, 60), 255, "uint8")])
    pa = rgba(tmp_path / "a.tif", a, "EPSG:32633", from_origin(500000, 4500000, 10, 10))
    pb = rgba(tmp_path / "b.tif", b, "EPSG:32633", from_origin(500400, 4500000, 10, 10))
    result = match([pa, pb], tmp_path / "out", references=["a"], method="global")
    assert result.model.bands == [1, 2, 3]
    with rasterio.open(result.outputs[0].path) as out:
        assert out.count == 3
        mask = out.dataset_mask()
        assert (mask[:5] == 0).all() and (mask[5:] == 255).all()  # transparency carried as a mask
    assert np.abs(result.model.global_fit.gains[1] * 1.1 - 1).max() < 0.02
    # the same second image, warped to another CRS, goes through the resampling path
    with rasterio.open(pb) as src, rasterio.vrt.WarpedVRT(src, crs="EPSG:32632") as vrt:
        profile = vrt.profile | {"driver": "GTiff"}
        warped = vrt.read()
    with rasterio.open(tmp_path / "bw.tif", "w", **profile) as dst:
        dst.write(warped)
    result = match([pa, tmp_path / "bw.tif"], tmp_path / "out2", references=["a"], method="global")
    assert np.abs(result.model.global_fit.gains[1] * 1.1 - 1).max() < 0.05
