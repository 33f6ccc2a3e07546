"""Sensor and unit agnostic: int16 with negative values, float reflectance with NaN nodata, uint8 nodata 255."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stacrrn import match
from tests.conftest import write_raster


def write(path, data, dtype, nodata, x0):
    return write_raster(path, data.astype(dtype), from_origin(x0, 1000, 10, 10), nodata=nodata)


@pytest.fixture()
def truth():
    return np.random.default_rng(0).normal(0, 500, (1, 120, 200))


def test_int16_negative_values(tmp_path, truth):
    a, b = truth[:, :, :120].copy(), truth[:, :, 80:] * 1.1 - 50
    a[:, :5, :5] = -32768
    paths = [write(tmp_path / "a.tif", a, "int16", -32768, 0), write(tmp_path / "b.tif", b, "int16", -32768, 800)]
    result = match(paths, tmp_path / "out", references=["a"], method="global")
    np.testing.assert_allclose(result.model.global_fit.gains[1], 1 / 1.1, rtol=1e-3)
    np.testing.assert_allclose(result.model.global_fit.offsets[1], 50 / 1.1, atol=0.5)
    with rasterio.open(result.outputs[0].path) as src:
        out = src.read()
    assert (out[:, :5, :5] == -32768).all() and (out[:, 5:, 5:] > -32768).all()


def test_float_reflectance_with_nan_nodata(tmp_path, truth):
    a = (truth[:, :, :120] / 1e4).astype("float32")
    b = ((truth[:, :, 80:] * 0.9 + 30) / 1e4).astype("float32")
    a[:, 50:60, 50:60] = np.nan
    paths = [write(tmp_path / "a.tif", a, "float32", np.nan, 0), write(tmp_path / "b.tif", b, "float32", np.nan, 800)]
    result = match(paths, tmp_path / "out", references=["a"], method="global+local", n_blocks=8)
    np.testing.assert_allclose(result.model.global_fit.gains[1], 1 / 0.9, rtol=1e-3)
    with rasterio.open(result.outputs[1].path) as src:
        out = src.read()
    np.testing.assert_allclose(out[:, :, :40], a[:, :, 80:], atol=2e-4)  # b corrected onto a in the overlap
    with rasterio.open(result.outputs[0].path) as src:
        out = src.read()
    assert np.isnan(out[:, 50:60, 50:60]).all() and np.isfinite(out[:, :50]).all()


def test_uint8_with_nodata_255_and_images_smaller_than_a_block(tmp_path):
    t8 = np.clip(np.random.default_rng(1).normal(120, 30, (3, 20, 30)), 0, 254)
    paths = [
        write(tmp_path / "s1.tif", t8[:, :, :20], "uint8", 255, 0),
        write(tmp_path / "s2.tif", np.clip(t8[:, :, 10:] * 1.05, 0, 254), "uint8", 255, 100),
    ]
    result = match(paths, tmp_path / "out", references=["s1"], n_blocks=1, min_overlap=16)
    assert np.abs(result.model.global_fit.gains[1] * 1.05 - 1).max() < 0.02
    with rasterio.open(result.outputs[1].path) as src:
        assert (src.read() != 255).all()
