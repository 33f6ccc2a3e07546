"""Bad inputs get one clear error each, before any pixel is read."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import stacrrn.xarray as sx
from stacrrn.errors import DataTypeError, InputError, MissingCRSError, NodataError, ParameterError
from tests.conftest import needs_shared

pytestmark = needs_shared


@pytest.fixture(scope="module")
def small(s2):
    """Two images of the real Dataset, cut small (nothing here gets as far as reading them)."""
    return s2.ds.isel(time=[0, 1], y=slice(200, 330), x=slice(200, 330))


def test_a_dataset_without_crs(small):
    bare = small.drop_vars("spatial_ref").assign_coords(x=small.x.values, y=small.y.values)  # no crs attributes
    with pytest.raises(MissingCRSError, match=r"no CRS.*assign_crs"):
        sx.fit(bare)
    with pytest.raises(MissingCRSError):
        sx.apply(bare, sx.fit(small, method="global", min_overlap=16))


def test_a_single_image(small):
    with pytest.raises(InputError, match="at least two images along 'time'; got 1"):
        sx.fit(small.isel(time=[0]))


def test_an_unknown_dimension(small):
    with pytest.raises(ParameterError, match="dimension 'date' is not one of time, y, x; pass dim="):
        sx.fit(small, dim="date")


def test_no_spatial_dimensions():
    plain = xr.Dataset({"b": (("time", "row", "col"), np.ones((2, 4, 4)))})
    with pytest.raises(InputError, match="no spatial dimensions"):
        sx.fit(plain)


def test_an_increasing_y_coordinate(small):
    with pytest.raises(InputError, match=r"increases.*isel\(y=slice\(None, None, -1\)\)"):
        sx.fit(small.isel(y=slice(None, None, -1)))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"publish": "http://127.0.0.1:1/stac"}, "apply to STAC runs only"),
        ({"crs": "EPSG:4326"}, "apply to jobs on files"),
        ({"fidelity_every": 1}, "apply to jobs on files"),
        ({"cloud_mask": "qa"}, "needs STAC items"),
        ({"star": True}, "--star pairs each date with the reference dates"),
        ({"method": "magic"}, "unknown --method 'magic'"),
        ({"references": ["2030-01-01"]}, "reference '2030-01-01' is none of the images"),
        ({"variables": ["b2"]}, r"unknown variable\(s\) 'b2'; known: b1, b3, b5, b8"),
        ({"footprints": "bbox"}, "unknown footprints= 'bbox'"),
        ({"nodata": "zero"}, "nodata= must be 'auto', None or a number"),
        ({"workers": "two"}, "workers= is a number of threads or a distributed.Client"),
        ({"workers": 0}, "--workers must be at least 1"),
    ],
)
def test_refused_options(small, values, message):
    with pytest.raises(ParameterError, match=message):
        sx.fit(small, **values)


def test_data_types_and_nodata_values_stacrrn_cannot_hold(small):
    with pytest.raises(DataTypeError, match=r"int64.*astype"):
        sx.fit(small.astype("int64"))
    with pytest.raises(NodataError, match="nodata -1 is not a uint16 value"):
        sx.fit(small, nodata=-1)


def test_apply_refuses_a_model_of_other_images_or_bands(small):
    model = sx.fit(small, method="global", min_overlap=16)
    with pytest.raises(InputError, match=r"2021-06-03, 2021-06-08 not in the model \(2021-05-27, 2021-06-01\)"):
        sx.apply(small.assign_coords(time=small.time.values + np.timedelta64(7, "D")), model)
    with pytest.raises(InputError, match="the model has 4 band"):
        sx.apply(small, model, variables=["b1", "b3"])
    with pytest.raises(ParameterError, match="unknown dtype= 'int8'"):
        sx.apply(small, model, dtype="int8")
