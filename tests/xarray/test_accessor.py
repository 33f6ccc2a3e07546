"""``obj.rrn``: the functions, registered on Datasets and DataArrays by ``import stacrrn.xarray``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import stacrrn.xarray as sx
from tests.conftest import needs_shared
from tests.xarray.conftest import BLOCKS, CHUNK, stacked

pytestmark = needs_shared

GRID = {"chunk_size": CHUNK, "n_blocks": BLOCKS}


def test_the_accessor_fits_applies_and_normalizes(s2):
    assert isinstance(s2.ds.rrn, sx.RRNAccessor)
    model = s2.ds.rrn.fit(method="global", **GRID)
    assert model.digest() == sx.fit(s2.ds, method="global", **GRID).digest()
    corrected = s2.ds.rrn.apply(model, dtype="source")
    assert corrected.identical(sx.apply(s2.ds, model, dtype="source"))
    normalized = s2.ds.rrn.normalize(method="global", dtype="source", **GRID)
    assert normalized.attrs[sx.MODEL_ATTR] == model.digest()
    assert normalized.identical(corrected)


def test_the_accessor_of_a_dataarray_returns_a_dataarray(s2):
    arr = stacked(s2.ds)
    normalized = arr.rrn.normalize(method="global", **GRID)
    assert isinstance(normalized, xr.DataArray)
    assert normalized.dims == arr.dims
    assert list(normalized.band.values) == ["b1", "b3", "b5", "b8"]
    expected = s2.ds.rrn.normalize(method="global", **GRID).to_array("band").transpose(*arr.dims)
    assert np.array_equal(normalized.values, expected.values, equal_nan=True)


def test_pass_1_on_a_dask_cluster(s2):
    distributed = pytest.importorskip("distributed")
    lazy = s2.ds.chunk({"time": 1, "y": CHUNK, "x": CHUNK})
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_cluster = sx.fit(lazy, workers=client, method="global", **GRID)
    assert on_cluster.digest() == sx.fit(s2.ds, method="global", **GRID).digest()  # chunk order: bit for bit
