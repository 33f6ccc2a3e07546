import math

import numpy as np
import pytest
import rasterio

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.local_model import LocalFit
from stacrrn.core.model import ImageRef, RRNModel
from stacrrn.report import BandSource, footprint, gain_mosaic, read_preview
from stacrrn.report.rasters import band_means, block_pixels, frame_outlines, pixel_ring, preview_shape, ring_extent
from stacrrn.types import BlockGrid, Box, Grid
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


def hand_made_fit():
    """Two overlapping frames on a 4x5 block grid: A covers blocks [0,3)x[0,3), B [1,4)x[2,5)."""
    a, b = np.ones((4, 3, 3)), np.ones((4, 3, 3))
    a[0], b[0] = 1.1, 0.905  # band 0: |log 0.905| > |log 1.1| although |0.905 - 1| < |1.1 - 1|
    b[0, 1, 0] = 0.95  # ... except at block (2, 2), where A's 1.1 departs most
    a[0, 0, 0] = np.nan  # a missing node: nothing to show at block (0, 0)
    a[2], b[2] = 1 + 5e-7, 1 - 5e-7  # band 2: float noise only
    b[3, 2, 2] = 1 + 2e-6  # band 3: a tiny but real correction at block (3, 4)
    return LocalFit(BlockGrid(10, 10, 4, 5), [Box(0, 0, 3, 3), Box(1, 2, 4, 5)], [a, b], np.zeros((2, 4)))


def test_gain_mosaic_places_nodes_on_the_block_grid_keeping_the_largest_log_gain():
    mosaic = gain_mosaic(hand_made_fit())
    values = mosaic.values
    assert values.shape == (4, 4, 5)
    assert values[0, 1, 2] == 0.905 and values[0, 2, 2] == 1.1  # overlap: the strongest in log terms, signed
    assert values[0, 1, 1] == 1.1 and values[0, 3, 4] == 0.905  # A only, B only
    assert np.isnan(values[:, [0, 0, 3, 3], [3, 4, 0, 1]]).all()  # no frame reaches these blocks
    assert np.isnan(values[0, 0, 0]) and values[1, 0, 0] == 1  # A's missing node, in band 0 only
    assert values[1, 1, 2] == 1 and values[1, 3, 4] == 1  # ones stay ones, overlaps included
    assert values[3, 3, 4] == 1 + 2e-6
    np.testing.assert_allclose(mosaic.spread, [0.1, 0, 5e-7, 2e-6], rtol=1e-9, atol=1e-15)
    assert mosaic.uncorrected.tolist() == [False, True, True, False]


def test_gain_mosaic_ties_go_to_the_first_image_and_frames_are_cut_to_the_grid():
    fit = hand_made_fit()
    a, b = fit.fields
    b = b.copy()
    b[0] = 1 / 1.1  # the same |log| as A's 1.1
    wide = LocalFit(fit.blocks, [fit.frames[0], Box(1, 2, 5, 6)], [a, np.ones((4, 4, 4))], fit.shifts)
    assert gain_mosaic(LocalFit(fit.blocks, fit.frames, [a, b], fit.shifts)).values[0, 1, 2] == 1.1
    assert gain_mosaic(wide).values.shape == (4, 4, 5)


def test_frame_outlines_and_block_pixels_in_the_grid_crs():
    fit = hand_made_fit()
    grid = Grid("EPSG:32630", (2.0, 0.0, 100.0, 0.0, -2.0, 500.0), 45, 35)  # the last blocks are partial
    model = RRNModel("local", [ImageRef("a", "a.tif"), ImageRef("b", "b.tif")], [1, 2, 3, 4], grid, [],
                     GlobalFit(np.ones((2, 4)), np.zeros((2, 4)), [[0, 1]], [[]], []), fit)  # fmt: skip
    a, b = frame_outlines(model)
    assert ring_extent(a) == (100.0, 160.0, 440.0, 500.0)
    assert ring_extent(b) == (140.0, 190.0, 430.0, 480.0)  # cut to the grid's 45 x 35 pixels
    assert np.array_equal(b[0], b[-1])
    whole = block_pixels(model, Box(0, 0, 4, 5), clip=False)
    assert whole == Box(0, 0, 40, 50) and ring_extent(pixel_ring(model, whole)) == (100.0, 200.0, 420.0, 500.0)
