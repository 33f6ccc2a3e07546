"""``stacrrn.xarray.fit`` computes the file jobs' model: same pixels in, same moments, same gains and fields out."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import rasterio

import stacrrn.xarray as sx
from stacrrn import match
from tests.conftest import SHARED, needs_shared
from tests.xarray.conftest import BLOCKS, CHUNK, dataset_of, stacked

pytestmark = needs_shared

GRID = {"chunk_size": CHUNK, "n_blocks": BLOCKS}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def same_model(fitted, matched) -> None:
    """Same parameters as the file job's model, bit for bit: only the images' names and paths differ."""
    assert [im.name for im in fitted.images] == ["2021-05-27", "2021-06-01", "2021-06-03", "2021-07-10"]
    assert [im.path for im in fitted.images] == [f"time={im.name}" for im in fitted.images]
    assert fitted.digest() != matched.digest()  # the names and paths are in the digest...
    assert replace(fitted, images=matched.images).digest() == matched.digest()  # ...and nothing else differs


@pytest.mark.parametrize("method", ["global", "global+local"])
def test_fit_of_a_dataset_is_the_match_model_on_files_of_the_same_pixels(s2, s2_match, method):
    fitted = sx.fit(s2.ds, method=method, workers=2, **GRID)
    matched = s2_match[method].model
    g, h = fitted.global_fit, matched.global_fit
    assert relative(g.gains, h.gains) < 1e-9
    assert relative(g.offsets, h.offsets) < 1e-9
    if method == "global+local":
        assert matched.quality["local_bands"], "the local step acts: the fields are worth comparing"
        for mine, theirs in zip(fitted.local_fit.fields, matched.local_fit.fields, strict=True):
            assert np.abs(mine - theirs).max() < 1e-9
        assert fitted.local_fit.frames == matched.local_fit.frames
    assert fitted.quality["before"] == matched.quality["before"]
    assert fitted.quality["xarray"] == {"dim": "time", "bands": ["b1", "b3", "b5", "b8"]}
    same_model(fitted, matched)


def test_the_gains_recover_the_injected_distortion(s2):
    """Not only equal to match: right. Holding image 0 fixed, every image comes back to image 0's radiometry."""
    model = sx.fit(s2.ds, method="global", references=[0], footprints="data", workers=2, **GRID)
    # corrected = a * (g * truth + o) + b  ==  g0 * truth + o0  <=>  a * g == g0 and a * o + b == o0
    g = model.global_fit
    assert np.abs(g.gains * s2.gains / s2.gains[0] - 1).max() < 0.005
    assert np.abs(g.gains * s2.offsets + g.offsets - s2.offsets[0]).max() < 5  # DN, of values in the thousands
    assert model.references == [0]


def test_dask_chunks_that_differ_from_the_plan_change_nothing_but_rounding(s2, s2_match):
    matched = s2_match["global+local"].model
    lazy = s2.ds.chunk({"time": 1, "y": 100, "x": 100})  # pass 1 follows these chunks
    fitted = sx.fit(lazy, workers=2, **GRID)
    assert relative(fitted.global_fit.gains, matched.global_fit.gains) < 1e-9
    assert relative(fitted.global_fit.offsets, matched.global_fit.offsets) < 1e-9
    for mine, theirs in zip(fitted.local_fit.fields, matched.local_fit.fields, strict=True):
        assert np.abs(mine - theirs).max() < 1e-9


def test_a_stacked_dataarray_is_the_same_images_and_bands(s2, s2_match):
    arr = stacked(s2.ds).chunk({"time": 1, "band": 2, "y": CHUNK, "x": CHUNK})
    fitted = sx.fit(arr, method="global", workers=2, **GRID)
    same_model(fitted, s2_match["global"].model)
    assert fitted.quality["xarray"]["bands"] == ["b1", "b3", "b5", "b8"]
    subset = sx.fit(arr, variables=["b1", "b5"], method="global", workers=2, **GRID)
    assert relative(subset.global_fit.gains, s2_match["global"].model.global_fit.gains[:, [0, 2]]) < 1e-9


def test_a_mosaic_on_a_common_grid_with_data_footprints_is_the_match_of_its_tiles(s2, tmp_path):
    """Tiles loaded on their union grid, NaN outside (odc-stac's groupby="id"): footprints from the data."""
    matched = match(s2.tiles, tmp_path, workers=2, **GRID).model
    mosaic = s2.ds.where(s2.ds != 0)  # float64, NaN outside each tile
    fitted = sx.fit(mosaic, footprints="data", workers=2, **GRID)
    assert fitted.local_fit.frames == matched.local_fit.frames
    same_model(fitted, matched)
    with pytest.warns(UserWarning, match="valid pixels on only"):  # whole-grid footprints: mostly empty images
        grid = sx.fit(mosaic, footprints="grid", references=[0], method="global", workers=2, **GRID)
    assert (
        relative(
            grid.global_fit.gains,
            sx.fit(mosaic, footprints="data", references=[0], method="global", workers=2, **GRID).global_fit.gains,
        )
        < 1e-9
    )


HAWAII = SHARED / "landsat_hawaii_timeseries"
DATES = ["20210326", "20220313", "20230503", "20240302", "20250422"]


@pytest.fixture(scope="module")
def hawaii():
    paths = [HAWAII / f"Landsat_{d}.tif" for d in DATES]
    with rasterio.open(paths[0]) as src:
        transform, crs = src.transform, src.crs.to_string()
    stack = np.stack([rasterio.open(p).read() for p in paths])
    times = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in DATES], "datetime64[ns]")
    names = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]
    return paths, dataset_of(stack, transform, crs, times, nodata=0, names=names)


def test_a_time_series_paired_by_neighbours_with_a_reference_date(hawaii, tmp_path):
    paths, ds = hawaii
    series = {"mode": "timeseries", "neighbours": 1, "method": "global", "workers": 2}
    matched = match(paths, tmp_path, references=["Landsat_20240302"], datetime_from_name="%Y%m%d", **series).model
    fitted = sx.fit(ds, references=["2024-03-02"], **series)
    assert fitted.references == [3]
    assert relative(fitted.global_fit.gains, matched.global_fit.gains) < 1e-9
    assert relative(fitted.global_fit.offsets, matched.global_fit.offsets) < 1e-9
    assert fitted.global_fit.gains[3] == pytest.approx(np.ones(7), abs=1e-12)  # the reference date is kept
    names = [im.name for im in fitted.images]
    assert names == ["2021-03-26", "2022-03-13", "2023-05-03", "2024-03-02", "2025-04-22"]
    assert [p["images"] for p in fitted.quality["pairs"]] == [list(p) for p in itertools.pairwise(names)]
    assert [row["datetime"] for row in fitted.quality["images"]] == [f"{name}T00:00:00Z" for name in names]
    # references by position or by date-time name the same image; a star pairs every date with it
    for ref in (3, -2, np.datetime64("2024-03-02")):
        assert sx.fit(ds, references=[ref], **series).references == [3]
    star = sx.fit(ds, references=["2024-03-02"], star=True, **(series | {"neighbours": None}))
    assert sorted(tuple(p["images"]) for p in star.quality["pairs"]) == sorted(
        tuple(sorted((im.name, "2024-03-02"))) for im in star.images if im.name != "2024-03-02"
    )


def test_neighbours_need_the_dates_in_order(hawaii):
    from stacrrn.errors import ParameterError

    _, ds = hawaii
    with pytest.raises(ParameterError, match="sortby"):
        sx.fit(ds.isel(time=[1, 0, 2, 3, 4]), mode="timeseries", neighbours=1)


def test_cloud_masks_and_pseudo_invariant_features_are_the_file_jobs(hawaii, tmp_path):
    """The spectral cloud test and IR-MAD PIFs (with a holdout) read the Dataset as they read files."""
    from stacrrn.options import PifOptions

    paths, ds = hawaii
    masked = {
        "mode": "timeseries",
        "neighbours": 1,
        "method": "global",
        "cloud_mask": "spectral",
        "reflectance": (2e-5, -0.1),
        "pif": PifOptions.parse(["imad", "ndvi"], holdout=0.2),
        "workers": 2,
    }
    names = list(ds.data_vars)
    matched = match(paths, tmp_path, references=["Landsat_20240302"], band_names=names, **masked).model
    fitted = sx.fit(ds, references=["2024-03-02"], **masked)  # the variables are common names
    assert relative(fitted.global_fit.gains, matched.global_fit.gains) < 1e-9
    assert relative(fitted.global_fit.offsets, matched.global_fit.offsets) < 1e-9
    used = [p["used_pixels"] for p in fitted.quality["pairs"]]
    assert used == [p["used_pixels"] for p in matched.quality["pairs"]]
    assert all(u < p["overlap_pixels"] for u, p in zip(used, fitted.quality["pairs"], strict=True))
    assert fitted.quality["holdout"][0]["bands"] == matched.quality["holdout"][0]["bands"]
