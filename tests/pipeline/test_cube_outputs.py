"""``run(..., format="zarr")``: one Zarr datacube of the normalized images and its datacube item.

Real Sentinel-2 pixels with known injected gains and offsets, on loopback S3 (moto's server)
found through a STAC API (rustac serve); the store is opened as a user opens it
(``xarray.open_zarr`` from S3) and compared with the corrected COGs of the same model.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import s3fs
import xarray as xr

import stacrrn.pipeline.cube_outputs
from stacrrn.errors import UnreadableRasterError
from stacrrn.io.stac import Search, gdal_path
from stacrrn.io.zarr_store import is_complete
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.services import RustacAPI
from tests.conftest import S2_TILES, needs_schemas, needs_shared, validate_stac, write_raster

pytestmark = needs_shared

BANDS = ["blue", "green", "red", "nir"]
GRID = {"chunk_size": 128, "n_blocks": 8}
"""Several chunks per image and a block grid, so that the local step and chunk writes are exercised."""


def distorted(path: Path, out: Path, gains: np.ndarray, offsets: np.ndarray, nodata: float | None = 0) -> Path:
    """Sentinel-2 bands 1, 3, 5, 8 of ``path`` times ``gains`` plus ``offsets``, as uint16 (>= 1: never nodata)."""
    with rasterio.open(path) as src:
        truth = src.read([1, 3, 5, 8]).astype(np.float64)
        transform, crs = src.transform, src.crs.to_string()
    img = np.clip(np.rint(truth * gains[:, None, None] + offsets[:, None, None]), 1, 65535).astype("uint16")
    return write_raster(out, img, transform, nodata=nodata, crs=crs)


def cog_pixels(item: dict) -> np.ndarray:
    """An output item's corrected COGs as ``(bands, rows, cols)``."""
    return np.stack([read(item["assets"][b]["href"])[0] for b in BANDS])


def read(href: str) -> np.ndarray:
    with rasterio.open(gdal_path(href)) as src:
        return src.read()


def store_pixels(ds: xr.Dataset, step: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
    """The store's bands of one image as ``(bands, rows, cols)``, as written (not decoded)."""
    sub = ds[BANDS].isel(time=step)
    if window is not None:
        sub = sub.isel(y=window[0], x=window[1])
    return sub.to_array("band").values


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """One real Sentinel-2 tile at five dates with known gains/offsets (the first untouched), uint16, nodata 0."""
    tmp = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(27)
    gains, offsets = rng.uniform(0.8, 1.2, (5, 4)), rng.uniform(0, 100, (5, 4))
    gains[0], offsets[0] = 1, 0
    paths = [distorted(S2_TILES[5], tmp / f"d{k}.tif", gains[k], offsets[k]) for k in range(5)]
    with rasterio.open(S2_TILES[5]) as src:
        truth = src.read([1, 3, 5, 8]).astype(np.float64)
    return paths, truth, gains, offsets


def publish(paths, where: str, collection_id: str, months: bool = True):
    when = [
        dt.datetime(2021, 3 + k, 1, 10, 30, tzinfo=dt.UTC) if months else dt.datetime(2021, 5, 27, 11, k, tzinfo=dt.UTC)
        for k in range(len(paths))
    ]
    return catalog_rasters(paths, where, collection_id, band_names=BANDS, split_bands=True, datetimes=when)


@needs_schemas
def test_time_series_cube_on_s3_holds_the_pixels_of_the_cogs_and_recovers_the_truth(s3, bucket, series):
    paths, truth, gains, _ = series
    coll, items = publish(paths, f"s3://{bucket}/in", "series")
    options = {"mode": "timeseries", "references": ["d0"], **GRID}
    with RustacAPI(coll, items) as api:
        search = Search(stac=api.url, collections=("series",))
        cogs = run(search, f"s3://{bucket}/cogs", **options)
        cube = run(search, f"s3://{bucket}/cube", format="zarr", **options)
    model = cube.model
    assert model.digest() == cogs.model.digest() and model.local_fit is not None
    (item,) = cube.items
    href = item["assets"]["zarr"]["href"]
    assert href == f"s3://{bucket}/cube/cube-{model.digest()}.zarr" and is_complete(href)

    raw = xr.open_zarr(href, mask_and_scale=False)  # consolidated metadata, from S3
    assert raw["id"].values.tolist() == [f"d{k}" for k in range(5)]
    assert raw.attrs["rrn:model"] == model.digest() and raw["blue"].dtype == np.uint16
    assert raw["blue"].encoding["chunks"] == (1, 128, 128)
    with rasterio.open(paths[0]) as src:  # the dates share one grid: the store's is theirs
        geobox = raw.odc.geobox
        assert geobox.shape == src.shape and geobox.affine == src.transform and geobox.crs == src.crs
    for k, out in enumerate(cogs.items):
        assert np.array_equal(store_pixels(raw, k), cog_pixels(out)), out["id"]  # bit for bit
    assert np.array_equal(raw["rrn_gain"].values, model.global_fit.gains)
    assert np.array_equal(raw["rrn_offset"].values, model.global_fit.offsets)

    # the truth: every date corrected onto the untouched reference date's values
    assert np.abs(model.global_fit.gains * gains - 1).max() < 1e-3
    decoded = xr.open_zarr(href)
    rounding = 0.5 / gains.min() + 0.5  # input rounding carried through the gain, then output rounding
    for k in range(5):
        values = decoded[BANDS].isel(time=k).to_array("band").values
        assert not np.isnan(values).any()  # no pixel of the tile is nodata
        error = np.abs(values - truth)
        assert (error <= rounding + 1e-3 * truth).mean() > 0.999, (k, error.max())

    # the item: valid datacube, projection and processing metadata naming the store and the model
    assert validate_stac(item) == []
    props = item["properties"]
    dims = props["cube:dimensions"]
    assert dims["time"]["values"] == [f"2021-{3 + k:02d}-01T10:30:00Z" for k in range(5)]
    assert dims["x"]["extent"] == [float(raw.x.min()), float(raw.x.max())] and dims["x"]["step"] == 10.0
    assert dims["y"]["extent"] == [float(raw.y.min()), float(raw.y.max())] and dims["y"]["step"] == -10.0
    assert set(props["cube:variables"]) == {*BANDS, "rrn_gain", "rrn_offset"}
    assert props["rrn:model_digest"] == model.digest() and props["rrn:images"] == [f"d{k}" for k in range(5)]
    assert item["assets"]["zarr"]["type"] == "application/vnd+zarr"
    assert item["assets"]["zarr"]["proj:shape"] == list(geobox.shape)
    assert len([ln for ln in item["links"] if ln["rel"] == "derived_from"]) == 5
    fs = s3fs.S3FileSystem()
    collection = json.loads(fs.cat(cube.collection_href[5:]))
    assert validate_stac(collection) == []
    assert [ln["href"] for ln in collection["links"] if ln["rel"] == "item"] == [
        cube.collection_href.rsplit("/", 1)[0] + f"/{item['id']}/{item['id']}.json"
    ]
    assert not any("/d0/" in key for key in fs.find(f"{bucket}/cube"))  # no per-item COGs


@pytest.mark.parametrize("nodata", [0, None])
def test_mosaic_cube_places_each_tile_at_its_cog_pixels(tmp_path, nodata):
    """Four tiles on their own extents: the store's window of each equals its COG; outside, the fill value."""
    rng = np.random.default_rng(3)
    gains, offsets = rng.uniform(0.8, 1.2, (4, 4)), rng.uniform(0, 100, (4, 4))
    paths = [
        distorted(S2_TILES[t], tmp_path / f"t{t:02d}.tif", gains[k], offsets[k], nodata)
        for k, t in enumerate((0, 1, 4, 5))
    ]
    publish(paths, str(tmp_path / "in"), "tiles", months=False)
    search = Search(catalog=str(tmp_path / "in" / "collection.json"))
    cogs = run(search, str(tmp_path / "cogs"), **GRID)
    cube = run(search, str(tmp_path / "cube"), format="zarr", **GRID)
    assert cube.model.digest() == cogs.model.digest()
    raw = xr.open_zarr(cube.items[0]["assets"]["zarr"]["href"], mask_and_scale=False)
    affine = raw.odc.geobox.affine
    for k, out in enumerate(cogs.items):
        want = cog_pixels(out)
        with rasterio.open(gdal_path(out["assets"]["blue"]["href"])) as src:
            col, row = ~affine @ (src.transform.c, src.transform.f)
        window = (slice(round(row), round(row) + want.shape[1]), slice(round(col), round(col) + want.shape[2]))
        got = store_pixels(raw, k, window)
        if nodata is None:  # no value of the tiles' type marks "no data": float32, NaN outside
            assert got.dtype == np.float32 and np.abs(got - want).max() <= 0.5
        else:
            assert got.dtype == np.uint16 and np.array_equal(got, want), out["id"]
        everything = store_pixels(raw, k)
        outside = np.ones(everything.shape[1:], dtype=bool)
        outside[window] = False
        fill = everything[:, outside]
        assert np.isnan(fill).all() if nodata is None else (fill == 0).all()


def test_rerun_keeps_the_store_and_another_model_replaces_it(tmp_path, series):
    paths = series[0][:3]
    publish(paths, str(tmp_path / "in"), "series")
    search = Search(catalog=str(tmp_path / "in" / "collection.json"))
    options = {"mode": "timeseries", "format": "zarr", **GRID}
    first = run(search, str(tmp_path / "out"), **options)
    store = Path(first.items[0]["assets"]["zarr"]["href"])
    stamp = (store / ".zmetadata").stat().st_mtime_ns
    again = run(search, str(tmp_path / "out"), **options)
    assert again.reused == ["d0", "d1", "d2"] and again.items[0] == first.items[0]
    assert (store / ".zmetadata").stat().st_mtime_ns == stamp  # not written again
    other = run(search, str(tmp_path / "out"), method="global", **options)
    new = Path(other.items[0]["assets"]["zarr"]["href"])
    assert new != store and is_complete(str(new)) and not store.exists()  # the superseded store is gone
    item = json.loads((tmp_path / "out" / "series-rrn-cube" / "series-rrn-cube.json").read_text())
    assert item["assets"]["zarr"]["href"] == str(new)
    assert sorted(p.name for p in (tmp_path / "out").glob("cube-*.zarr")) == [new.name]


def test_a_failed_write_publishes_neither_the_item_nor_the_consolidated_store(tmp_path, series, monkeypatch):
    paths = series[0][:3]
    publish(paths, str(tmp_path / "in"), "series")
    search = Search(catalog=str(tmp_path / "in" / "collection.json"))
    real = stacrrn.pipeline.cube_outputs.ChunkTask.__call__
    calls = []

    def failing(self, box):
        calls.append(box)
        if len(calls) == 3:
            raise UnreadableRasterError("cannot read item(s) d1: connection reset")
        return real(self, box)

    monkeypatch.setattr(stacrrn.pipeline.cube_outputs.ChunkTask, "__call__", failing)
    with pytest.raises(UnreadableRasterError):
        run(search, str(tmp_path / "out"), mode="timeseries", format="zarr", workers=1, **GRID)
    out = tmp_path / "out"
    (store,) = out.glob("cube-*.zarr")
    assert (store / ".zgroup").exists() and not is_complete(str(store))  # laid out, some chunks, never published
    with pytest.raises((KeyError, FileNotFoundError, ValueError)):
        xr.open_zarr(store, consolidated=True)
    assert not (out / "series-rrn-cube").exists() and not (out / "collection.json").exists()
    assert json.loads((out / "stacrrn-manifest.json").read_text())["status"] == "failed"
    monkeypatch.setattr(stacrrn.pipeline.cube_outputs.ChunkTask, "__call__", real)
    done = run(search, str(tmp_path / "out"), mode="timeseries", format="zarr", workers=1, **GRID)
    assert done.reused == [] and is_complete(done.items[0]["assets"]["zarr"]["href"])


def test_a_dask_cluster_writes_the_same_store_as_threads(s3, bucket, series):
    """Chunk tasks on worker processes write the store on S3 straight; the pixels equal the threads' own."""
    from stacrrn.pipeline.execution.parallel import connect

    publish(series[0][:3], f"s3://{bucket}/in", "series")
    search = Search(catalog=f"s3://{bucket}/in/collection.json")
    options = {"mode": "timeseries", "format": "zarr", **GRID}
    threads = run(search, f"s3://{bucket}/threads", **options)
    with connect("local", 2) as cluster:
        on_cluster = run(search, f"s3://{bucket}/cluster", workers=cluster, **options)
    a = xr.open_zarr(threads.items[0]["assets"]["zarr"]["href"], mask_and_scale=False)
    b = xr.open_zarr(on_cluster.items[0]["assets"]["zarr"]["href"], mask_and_scale=False)
    assert on_cluster.model.digest() == threads.model.digest()
    assert all(np.array_equal(a[v].values, b[v].values) for v in BANDS)


def test_cloud_masks_shape_the_model_but_every_pixel_is_in_the_store(s3, bucket, tmp_path):
    """QA masks keep clouds out of pass 1 only: under the clouds the store holds corrected pixels, the COGs' own."""
    from tests.pipeline.masks.test_cloud_masks import BANDS as LANDSAT
    from tests.pipeline.masks.test_cloud_masks import CLEAR, cloudy_strips, with_qa_assets

    images, qas, _ = cloudy_strips(tmp_path)
    coll, items = with_qa_assets(images, qas, bucket)
    options = {"assets": LANDSAT, "references": ["L0"], "method": "global", **GRID}
    with RustacAPI(coll, items) as api:
        search = Search(stac=api.url, collections=("landsat",))
        cogs = run(search, f"s3://{bucket}/cogs", **options)
        cube = run(search, f"s3://{bucket}/cube", format="zarr", **options)
    assert cube.model.digest() == cogs.model.digest()
    raw = xr.open_zarr(cube.items[0]["assets"]["zarr"]["href"], mask_and_scale=False)
    with rasterio.open(qas[1]) as src:
        clouds = src.read(1) != CLEAR
    col = round((~raw.odc.geobox.affine @ (src.transform.c, src.transform.f))[0])
    got = raw[LANDSAT].isel(time=1, x=slice(col, col + 200)).to_array("band").values
    want = np.stack([read(cogs.items[1]["assets"][b]["href"])[0] for b in LANDSAT])
    assert clouds.sum() > 1000 and (got[:, clouds] != 0).all()  # under the clouds: data, not the fill value
    assert np.array_equal(got, want)
