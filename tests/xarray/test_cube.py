"""How an xarray object is read: image names, bands, nodata and the grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from stacrrn.xarray.cube import cube_of, image_names
from tests.conftest import needs_shared


def test_images_are_named_by_their_labels():
    days = np.array(["2021-05-27", "2021-06-01"], "datetime64[ns]")
    assert image_names(days) == ("2021-05-27", "2021-06-01")
    times = np.array(["2021-05-27T10:41:07", "2021-06-01"], "datetime64[ns]")
    assert image_names(times) == ("2021-05-27T10:41:07", "2021-06-01T00:00:00")
    same_pass = np.array(["2021-05-27T10:41:07"] * 2 + ["2021-05-28T10:41:07"], "datetime64[us]")
    assert image_names(same_pass) == ("2021-05-27T10:41:07#0", "2021-05-27T10:41:07#1", "2021-05-28T10:41:07")
    assert image_names(np.array(["a", "b"])) == ("a", "b")


@needs_shared
def test_bands_nodata_and_grid_of_a_dataset_and_a_dataarray(s2):
    ds = s2.ds.assign(b8=s2.ds["b8"].astype("float32").assign_attrs(nodata=None, _FillValue=-1.0))
    cube = cube_of(ds)
    assert cube.labels == ("b1", "b3", "b5", "b8")
    assert cube.nodata == (0.0, 0.0, 0.0, -1.0)
    assert cube.names == ("2021-05-27", "2021-06-01", "2021-06-03", "2021-07-10")
    assert (cube.grid.width, cube.grid.height) == (ds.sizes["x"], ds.sizes["y"])
    assert cube.grid.transform == tuple(ds.odc.geobox.affine)[:6]
    assert cube_of(ds, nodata=None).nodata == (None,) * 4
    assert cube_of(s2.ds.assign_attrs(), nodata=float("nan")).nodata == (None,) * 4  # NaN marks no integer
    arr = xr.concat([s2.ds[v] for v in ("b1", "b3")], "band").assign_coords(band=[1, 3])
    arr = arr.transpose("time", "band", "y", "x")
    assert cube_of(arr).labels == ("1", "3")
    assert cube_of(arr, variables=["3"]).labels == ("3",)
    assert cube_of(arr.isel(band=0, drop=True).rename("red")).labels == ("red",)


@needs_shared
def test_extra_dimensions_are_refused(s2):
    from stacrrn.errors import ParameterError

    arr = s2.ds["b1"].expand_dims(level=[1, 2])
    with pytest.raises(ParameterError, match=r"has dims \(level, time, y, x\).*select or squeeze"):
        cube_of(arr)
