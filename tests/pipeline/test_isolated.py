"""An image overlapping nothing is reported and kept unchanged, with or without references."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from stacrrn import match
from stacrrn.samples import write_sample_mosaic
from tests.conftest import write_raster


@pytest.mark.parametrize("references", [None, ["tile_00"]])
@pytest.mark.parametrize("method", ["global+local", "local"])
def test_isolated_image_is_identity(tmp_path, references, method):
    sample = write_sample_mosaic(tmp_path / "scenes", tiles=2, tile_size=96, overlap=24)
    data = np.full((4, 40, 40), 500, "uint16")
    data[:, ::2] = 900
    far = write_raster(tmp_path / "far.tif", data, from_origin(500000 + 10 * 400, 4500000, 10, 10), nodata=0)
    result = match([*sample.paths, far], tmp_path / "out", references=references, method=method, n_blocks=8)
    assert any("far overlaps no other image" in w for w in result.warnings)
    with rasterio.open(result.outputs[-1].path) as src:
        np.testing.assert_array_equal(src.read(), data)
