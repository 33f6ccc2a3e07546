"""COG writing: overview levels as GDAL's COG driver chooses them, built before the copy, masks included."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Interleaving
from rio_cogeo.cogeo import cog_validate

from stacrrn.io.cog import overview_factors, write_cog
from stacrrn.types import Grid


@pytest.mark.parametrize(
    ("size", "factors"), [((512, 300), []), ((2048, 2048), [2, 4]), ((3891, 1000), [2, 4, 8]), ((513, 10), [2])]
)
def test_overview_factors_halve_until_one_block(size, factors):
    assert overview_factors(*size) == factors


def test_written_cog_is_valid_with_averaged_overviews_of_data_and_mask(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 4000, (2, 1100, 1300), dtype=np.uint16)
    mask = np.ones((1100, 1300), bool)
    mask[:200] = False
    grid = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0), 1300, 1100)
    write_cog(tmp_path / "a.tif", data, grid, mask=mask)
    valid, errors, _ = cog_validate(str(tmp_path / "a.tif"), quiet=True)
    assert valid and not errors
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.overviews(1) == [2, 4]
        assert src.interleaving == Interleaving.pixel  # a band-interleaved staging file does not leak through
        np.testing.assert_array_equal(src.read(masked=True).filled(0), np.where(mask, data, 0))
    with rasterio.open(tmp_path / "a.tif", overview_level=0) as ovr:
        assert ovr.read_masks(1)[:100].max() == 0 and ovr.read_masks(1)[100:].min() == 255
        # the average of each 2 x 2 block of the full resolution (values stay below 2**16)
        expected = data[:, 200:1100, :1300].reshape(2, 450, 2, 650, 2).mean(axis=(2, 4))
        got = ovr.read()[:, 100:550, :650].astype(float)
        assert np.abs(got - expected).max() <= 0.5


@pytest.mark.parametrize(("size", "tile"), [((16, 16), 16), ((300, 200), 304), ((256, 256), 256), ((600, 10), 512)])
def test_a_raster_smaller_than_a_tile_is_one_tile_of_its_own_size(tmp_path, size, tile):
    """No 512 x 512 tile padded around a block map or a small scene: one tile just holding it, a valid COG."""
    width, height = size
    data = np.random.default_rng(1).random((3, height, width)).astype(np.float32)
    grid = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0), width, height)
    write_cog(tmp_path / "a.tif", data, grid, nodata=float("nan"))
    valid, errors, _ = cog_validate(str(tmp_path / "a.tif"), quiet=True)
    assert valid and not errors
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.block_shapes[0] == (tile, tile)
        np.testing.assert_array_equal(src.read(), data)
