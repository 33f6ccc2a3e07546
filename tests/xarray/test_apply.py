"""``stacrrn.xarray.apply``: the corrected pixels of pass 2, lazily, on the object's own grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import rasterio
import xarray as xr
from dask.callbacks import Callback

import stacrrn.xarray as sx
from stacrrn.core.fields import PIXEL_FIELD_RTOL
from tests.conftest import needs_shared
from tests.xarray.conftest import BLOCKS, CHUNK, stacked

pytestmark = needs_shared

GRID = {"chunk_size": CHUNK, "n_blocks": BLOCKS}
VARIABLES = ["b1", "b3", "b5", "b8"]


def outputs(result) -> np.ndarray:
    """Pass 2's output COGs as ``(images, bands, rows, cols)``."""
    arrays = []
    for out in result.outputs:
        with rasterio.open(out.path) as src:
            arrays.append(src.read())
    return np.stack(arrays)


def pixels(obj) -> np.ndarray:
    """``(time, band, y, x)`` values of a Dataset (its model bands) or a DataArray."""
    if isinstance(obj, xr.Dataset):
        obj = obj[VARIABLES].to_array("band")
    return obj.transpose("time", "band", "y", "x").values


@pytest.fixture(scope="module")
def fitted(s2):
    return sx.fit(s2.ds, workers=2, **GRID)  # global+local, equal to the match model (test_fit)


@pytest.mark.parametrize(
    "layout",
    ["numpy", "dask chunks off the strips", "stacked DataArray", "the match model, images named"],
)
def test_source_dtype_gives_the_pixels_of_the_match_outputs_exactly(s2, s2_match, fitted, layout):
    result = s2_match["global+local"]
    obj, model, names = s2.ds, fitted, None
    if layout == "dask chunks off the strips":
        obj = s2.ds.chunk({"time": 2, "y": 100, "x": 90})
    elif layout == "stacked DataArray":
        obj = stacked(s2.ds).chunk({"time": 1, "band": 3, "y": 200, "x": 200})
    elif layout == "the match model, images named":
        model, names = result.model, [p.stem for p in s2.paths]
    corrected = sx.apply(obj, model, dtype="source", images=names)
    assert type(corrected) is type(obj)
    got, want = pixels(corrected), outputs(result)
    assert got.dtype == want.dtype == np.uint16
    assert np.array_equal(got, want)
    assert (got == 0).sum() == (pixels(s2.ds) == 0).sum()  # nodata where the input has it, nowhere else


def test_float_output_is_nan_where_invalid_and_unrounded_elsewhere(s2, s2_match, fitted):
    corrected = sx.apply(s2.ds, fitted)
    got, want, raw = pixels(corrected), outputs(s2_match["global+local"]), pixels(s2.ds)
    assert got.dtype == np.float64
    assert np.array_equal(np.isnan(got), raw == 0)
    valid = raw != 0
    assert np.abs(got[valid] - want[valid]).max() <= 0.5  # the files round what apply leaves unrounded
    assert corrected["b1"].attrs["nodata"] != corrected["b1"].attrs["nodata"]  # NaN
    single = sx.apply(s2.ds, fitted, dtype="float32")
    assert single["b5"].dtype == np.float32
    assert np.allclose(pixels(single)[valid], got[valid], rtol=1e-6)


def test_apply_is_lazy_until_computed(s2, fitted):
    class Counter(Callback):
        tasks = 0

        def _pretask(self, key, dsk, state):
            Counter.tasks += 1

    lazy = s2.ds.chunk({"time": 1, "y": 256, "x": 256})
    with Counter():
        corrected = sx.apply(lazy, fitted, dtype="source")
        from_numpy = sx.apply(s2.ds, fitted)
        assert Counter.tasks == 0, "nothing is computed while the graph is built"
        assert all(isinstance(corrected[v].data, type(lazy["b1"].data)) for v in VARIABLES)
        assert all(hasattr(from_numpy[v].data, "dask") for v in VARIABLES)  # NumPy data come back as Dask arrays
        assert corrected["b1"].chunks == lazy["b1"].chunks
        corrected["b1"].isel(time=0).compute()
    assert Counter.tasks > 0


def test_attributes_name_the_model_and_other_variables_pass_through(s2, fitted):
    ds = s2.ds.assign(scl=s2.ds["b1"] % 11)  # a layer that is not a band of the model
    corrected = sx.apply(ds, fitted)  # the model's bands are found by the labels it was fitted on
    assert corrected.attrs[sx.MODEL_ATTR] == fitted.digest()
    assert corrected.attrs["rrn:method"] == "global+local"
    assert all(corrected[v].attrs[sx.MODEL_ATTR] == fitted.digest() for v in VARIABLES)
    assert corrected["scl"].identical(ds["scl"])


def test_a_window_of_the_data_is_corrected_as_in_the_whole(s2, fitted):
    """The local fields are evaluated on the object's own grid: a window gets the same pixels as the whole.

    Both are within PIXEL_FIELD_RTOL of the float64 field (float32 products cut differently);
    a window placed one pixel off differs by 4.4e-6 here.
    """
    window = {"y": slice(130, 400), "x": slice(77, 333)}
    whole = sx.apply(s2.ds, fitted).isel(window)
    part = sx.apply(s2.ds.isel(window), fitted)
    assert np.allclose(pixels(part), pixels(whole), rtol=2 * PIXEL_FIELD_RTOL, atol=0, equal_nan=True)
    assert not np.allclose(pixels(part), pixels(s2.ds.isel(window)), equal_nan=True)


def test_an_odc_stac_load_normalizes_as_match_does_on_the_files(tmp_path):
    """End to end on a real loader: catalogued Landsat dates loaded lazily by odc-stac, fitted and applied."""
    import odc.stac

    from stacrrn import catalog_rasters, match
    from stacrrn.io.stac import Search, search_items
    from tests.xarray.test_fit import DATES, HAWAII

    paths = [HAWAII / f"Landsat_{d}.tif" for d in DATES]
    names = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]
    catalog_rasters(
        paths, str(tmp_path / "cat"), "hawaii", band_names=names, split_bands=True, datetime_from_name="%Y%m%d"
    )
    items = search_items(Search(catalog=str(tmp_path / "cat" / "collection.json")))
    ds = odc.stac.load(items, bands=names, chunks={"x": CHUNK, "y": CHUNK}, groupby="id")
    series = {"mode": "timeseries", "workers": 2, **GRID}
    result = match(paths, tmp_path / "out", references=["Landsat_20240302"], datetime_from_name="%Y%m%d", **series)
    model = sx.fit(ds, references=["2024-03-02"], **series)
    assert [im.name for im in model.images] == [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in DATES]
    # (real date-to-date differences follow land cover: the held-out check keeps no local field here)
    assert replace(model, images=result.model.images).digest() == result.model.digest()
    corrected = sx.apply(ds, model, dtype="source")
    assert np.array_equal(corrected[names].to_array("band").transpose("time", "band", "y", "x").values, outputs(result))
