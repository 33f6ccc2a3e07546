import math

import numpy as np
import pytest
import rasterio

from stacrrn.report import BandSource, footprint, read_preview
from stacrrn.report.rasters import band_means, preview_shape
from tests.conftest import write_raster


@pytest.mark.parametrize(
    ("width", "height", "overviews", "shape"),
    [
        (1100, 1000, [2, 4, 8], (250, 275)),  # 1100/4 >= 256 > 1100/8
        (300, 200, [2], (200, 300)),  # no overview is big enough: the full raster (small)
        (2048, 100, [], (13, 256)),  # no overviews: decimated to ~256
        (100, 80, [], (80, 100)),
    ],
)
def test_preview_shape_is_the_smallest_overview_of_at_least_256(width, height, overviews, shape):
    assert preview_shape(width, height, overviews) == shape


def test_preview_reads_the_overview_and_masks_nodata(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 5000, (3, 1000, 1100)).astype("uint16")
    data[:, :40, :] = 0
    path = write_raster(tmp_path / "big.tif", data, rasterio.Affine(10, 0, 500000, 0, -10, 4500000), nodata=0,
                        tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)
    preview = read_preview([BandSource(str(path), 3), BandSource(str(path), 1)])
    assert preview.shape == (2, 250, 275)
    with rasterio.open(path, overview_level=1) as ov:  # the x4 overview, exactly
        expected = ov.read([3, 1]).astype(float)
    expected[expected == 0] = np.nan
    np.testing.assert_array_equal(preview, expected)
    assert np.isnan(preview[:, :10]).all() and np.isfinite(preview[:, 11:]).all()
    assert band_means(preview) == pytest.approx(np.nanmean(expected.reshape(2, -1), axis=1))


def test_footprint_is_a_closed_ring_in_the_target_crs(tmp_path):
    path = write_raster(
        tmp_path / "a.tif", np.ones((1, 20, 30), "uint8"), rasterio.Affine(10, 0, 500000, 0, -10, 4500000)
    )
    ring = footprint(str(path), "EPSG:32633")
    assert ring.shape == (33, 2) and (ring[0] == ring[-1]).all()
    assert ring[:, 0].min() == 500000 and ring[:, 0].max() == 500300 and ring[:, 1].min() == 4499800
    lonlat = footprint(str(path), "EPSG:4326")
    assert 14.9 < lonlat[:, 0].min() < lonlat[:, 0].max() < 15.1 and math.isclose(lonlat[0, 1], lonlat[-1, 1])
