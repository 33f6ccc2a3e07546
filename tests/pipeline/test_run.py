"""End to end on real loopback services: scenes with known distortions on S3 (moto server),
found by a STAC API (rustac serve), normalized by ``stacrrn.run``, written back to S3."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests
import s3fs

from stacrrn.io.stac import Search, gdal_path, search_items
from stacrrn.io.storage import sha256_multihash
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.samples import landscape
from stacrrn.services import RustacAPI
from tests.conftest import S2_TILES, distort_tiles, needs_schemas, needs_shared, validate_stac, write_raster

BANDS = ["blue", "green", "red", "nir"]
TILES = [0, 1, 4, 5]  # a 2x2 block of the 4x4 Sentinel-2 tiles


@pytest.fixture(scope="module")
def s2_scenes(tmp_path_factory):
    """Four real Sentinel-2 tiles (bands 1, 3, 5, 8) with known gains/offsets; tile 0 untouched.

    float32 reflectance-like DN: in uint16, offsets down to -100 would clip dark pixels at 1
    (a real nonlinearity no affine model can undo).
    """
    rng = np.random.default_rng(7)
    gains = rng.uniform(0.8, 1.2, (4, 4))
    offsets = rng.uniform(-100, 100, (4, 4))
    gains[0], offsets[0] = 1, 0
    tmp = tmp_path_factory.mktemp("s2")
    paths, truths = distort_tiles(
        tmp,
        [S2_TILES[k] for k in TILES],
        [1, 3, 5, 8],
        lambda k, t: t * gains[k][:, None, None] + offsets[k][:, None, None],
        dtype="float32",
    )
    return paths, truths, gains, offsets


def publish_scenes(paths, bucket, collection_id, split=True, **kw):
    when = [dt.datetime(2021, 5, 27, 11, k, tzinfo=dt.UTC) for k in range(len(paths))]
    return catalog_rasters(
        paths, f"s3://{bucket}/in", collection_id, band_names=BANDS, split_bands=split, datetimes=when, **kw
    )


def fetch_json(href: str) -> dict:
    if href.startswith("s3://"):
        return json.loads(s3fs.S3FileSystem().cat(href[5:]))
    return requests.get(href, timeout=10).json()


def read_asset(href: str) -> np.ndarray:
    with rasterio.open(gdal_path(href)) as src:
        return src.read().astype(np.float64)


@needs_shared
@needs_schemas
def test_run_recovers_truth_and_writes_valid_cogs_and_items(s3, bucket, s2_scenes):
    from rio_cogeo.cogeo import cog_validate

    paths, truths, gains, offsets = s2_scenes
    coll, items = publish_scenes(paths, bucket, "s2")
    with RustacAPI(coll, items) as api:
        result = run(
            Search(stac=api.url, collections=("s2",), bbox=(-4.2, 52.3, -4.0, 52.5)),
            f"s3://{bucket}/out",
            assets=["blue", "green", "red", "nir"],
            references=["t00"],
            method="global+local",
        )
        # the derived_from links point at the searched items (their self hrefs), and resolve
        for item in result.items:
            (src,) = [ln["href"] for ln in item["links"] if ln["rel"] == "derived_from"]
            assert fetch_json(src)["id"] == item["id"]

    g, o = result.model.global_fit.gains, result.model.global_fit.offsets
    assert np.abs(g * gains - 1).max() < 1e-4  # correction gain = 1 / injected gain
    assert np.abs(g * offsets + o).max() < 0.05  # DN
    fs = s3fs.S3FileSystem()
    for item, truth in zip(result.items, truths, strict=True):
        assert validate_stac(item) == [], item["id"]
        out = np.concatenate([read_asset(item["assets"][b]["href"]) for b in BANDS])
        rel = np.sqrt(((out - truth) ** 2).mean(axis=(1, 2))) / truth.std(axis=(1, 2))
        assert rel.max() < 1e-3, (item["id"], rel)
        for key in BANDS:
            asset = item["assets"][key]
            valid, errors, _ = cog_validate(gdal_path(asset["href"]), quiet=True)
            assert valid, errors
            local = fs.open(asset["href"][5:], "rb").read()
            assert len(local) == asset["file:size"]
            stats = asset["raster:bands"][0]["statistics"]
            assert stats["minimum"] <= stats["mean"] <= stats["maximum"]
        with rasterio.open(gdal_path(item["assets"]["blockmap"]["href"])) as bm:
            assert bm.count == 4 and np.isfinite(bm.read()).all()
        props = item["properties"]
        assert props["rrn:method"] == "global+local" and props["rrn:references"] == ["t00"]
        assert set(props["rrn:gain"]) == set(BANDS) and "block_grid" not in props
        assert props["rrn:block_grid"]["n_rows"] > 1 and item["assets"]["model"]["roles"] == ["metadata"]
        fidelity = props["rrn:fidelity"]
        assert set(fidelity["correlation"]) == set(BANDS) and fidelity["spectral_angle_deg"] is None  # band per asset
        assert min(fidelity["correlation"].values()) > 0.99 and fidelity["sample_every"] == 4  # the default
        after = props["rrn:quality"]["after"]
        assert after["pixel_mae"]["red"] < 0.05 * props["rrn:quality"]["before"]["pixel_mae"]["red"]
        if item["id"] == "t00":  # the reference keeps its values, up to the local step's field
            assert min(fidelity["ssim"].values()) > 0.99
    # the model JSON gained what pass 2 measured, per item, with the dates of a time series table
    quality = json.loads(fs.cat(result.model_href[5:]))["quality"]
    assert set(quality["fidelity"]) == {"t00", "t01", "t02", "t03"}
    assert all(len(row["mean_after"]) == 4 and row["datetime"].startswith("2021-05-27") for row in quality["images"])
    # the published collection is a static catalog a second search finds the outputs in
    again = search_items(Search(catalog=result.collection_href))
    assert sorted(it.id for it in again) == ["t00", "t01", "t02", "t03"]
    assert all(it.properties["rrn:model_digest"] == result.model.digest() for it in again)
    assert validate_stac(json.loads(fs.cat(result.collection_href[5:]))) == []
    assert not fs.exists(f"{bucket}/out/.stacrrn-tmp")  # no temporary key left behind


def test_time_series_with_nearest_date_graph_recovers_gains(s3, bucket, tmp_path):
    """One place at six dates with known gains/offsets; each date paired with its nearest date only."""
    truth = landscape(160, 160, seed=3)
    rng = np.random.default_rng(11)
    n = 6
    gains, offsets = rng.uniform(0.7, 1.3, (n, 4)), rng.uniform(-200, 200, (n, 4))
    gains[2], offsets[2] = 1, 0
    transform = rasterio.Affine(20.0, 0, 600000.0, 0, -20.0, 5200000.0)
    paths = []
    for k in range(n):
        img = np.clip(np.rint(truth * gains[k][:, None, None] + offsets[k][:, None, None]), 1, 65535)
        paths.append(write_raster(tmp_path / f"d{k}.tif", img.astype("uint16"), transform, nodata=0))
    when = [dt.datetime(2020 + k, 7, 1, tzinfo=dt.UTC) for k in range(n)]
    coll, items = catalog_rasters(paths, f"s3://{bucket}/in", "series", band_names=BANDS, datetimes=when)
    with RustacAPI(coll, items) as api:
        result = run(
            Search(stac=api.url, collections=("series",), datetime="2019-01-01/2030-01-01"),
            f"s3://{bucket}/out",
            mode="timeseries",
            neighbours=1,
            references=["d2"],
            method="global",
        )
    assert [it["id"] for it in result.items] == [f"d{k}" for k in range(n)]  # in date order
    assert np.abs(result.model.global_fit.gains * gains - 1).max() < 1e-3
    with np.load(io.BytesIO(s3fs.S3FileSystem().cat(f"{bucket}/out/stacrrn-statistics.npz"))) as cache:
        assert cache["pairs.index"].tolist() == [[k, k + 1] for k in range(n - 1)]  # a chain, not all n(n-1)/2 pairs


def test_interrupted_run_resumes_without_redoing_finished_items(s3, bucket, tmp_path):
    paths = []
    base = landscape(200, 520, seed=5)
    for k in range(4):  # four overlapping strips with different gains
        img = np.clip(np.rint(base[:, :, k * 100 : k * 100 + 200] * (0.85 + 0.1 * k) + 20 * k), 1, 65535)
        t = rasterio.Affine(10.0, 0, 400000.0 + 1000.0 * k, 0, -10.0, 5000000.0)
        paths.append(write_raster(tmp_path / f"s{k}.tif", img.astype("uint16"), t, nodata=0))
    coll, items = catalog_rasters(paths, f"s3://{bucket}/in", "strips", band_names=BANDS, split_bands=True)
    fs = s3fs.S3FileSystem()
    with RustacAPI(coll, items) as api:
        search = Search(stac=api.url, collections=("strips",))

        def interrupt(stage: str, done: int, total: int) -> None:
            if stage == "apply" and done == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run(search, f"s3://{bucket}/out", workers=1, progress=interrupt)
        visible = sorted(fs.glob(f"{bucket}/out/*/*.json"))
        assert len(visible) == 2
        for key in visible:  # every visible item is whole: all its assets exist
            item = json.loads(fs.cat(key))
            assert all(fs.exists(a["href"].replace("s3://", "")) for a in item["assets"].values())
        assert not fs.exists(f"{bucket}/out/.stacrrn-tmp")
        resumed = run(search, f"s3://{bucket}/out", workers=1)
        clean = run(search, f"s3://{bucket}/clean", workers=1)
    assert resumed.statistics_reused and sorted(resumed.reused) == ["s0", "s1"]
    assert len(resumed.items) == 4 and clean.reused == []
    for a, b in zip(resumed.items, clean.items, strict=True):
        for key in [*BANDS, "blockmap"]:
            assert a["assets"][key]["file:checksum"] == b["assets"][key]["file:checksum"], (a["id"], key)
    local = tmp_path / "check.tif"
    fs.get(resumed.items[3]["assets"]["red"]["href"][5:], str(local))
    assert sha256_multihash(local) == resumed.items[3]["assets"]["red"]["file:checksum"]


@needs_schemas
def test_http_hrefs_item_files_and_a_local_output_folder(s3, bucket, tmp_path):
    """Assets read over plain HTTP range requests (/vsicurl/), items from files, outputs to a folder."""
    from stacrrn.samples import write_sample_mosaic

    sample = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=128, overlap=32)
    _, items = catalog_rasters(sample.paths, f"s3://{bucket}/in", "tiles", band_names=BANDS)
    import boto3

    client = boto3.client("s3")
    files = []
    for it in items:
        for asset in it["assets"].values():
            client.put_object_acl(Bucket=bucket, Key=asset["href"].split("/", 3)[3], ACL="public-read")
            asset["href"] = asset["href"].replace("s3://", s3.endpoint + "/")
        path = tmp_path / f"{it['id']}.json"
        path.write_text(json.dumps(it))
        files.append(str(path))
    out = tmp_path / "normalized"
    result = run(Search(item_files=tuple(files)), str(out), references=["tile_00"], method="global")
    assert items[1]["assets"]["image"]["href"].startswith("http://127.0.0.1:")
    assert np.abs(result.model.global_fit.gains * sample.gains - 1).max() < 2e-3
    written = json.loads((out / "tile_03" / "tile_03.json").read_text())
    image = written["assets"]["image"]["href"]
    assert image == str(out / "tile_03" / f"image-{result.model.digest()}.tif")
    assert written["assets"]["image"]["eo:bands"] == [{"name": b, "common_name": b} for b in BANDS]
    assert validate_stac(written) == []
    assert (out / "collection.json").exists() and not (out / ".stacrrn-tmp").exists()
    with rasterio.open(image) as src:
        assert src.count == 4 and src.dtypes[0] == "uint16" and src.nodata == 0
    # another model into the same folder: new asset keys, the item replaced, superseded assets removed
    again = run(
        Search(item_files=tuple(files)), str(out), references=["tile_00"], method="global+local", assets=["nir", "red"]
    )
    assert again.model.digest() != result.model.digest() and again.reused == []
    replaced = json.loads((out / "tile_03" / "tile_03.json").read_text())
    assert replaced["properties"]["rrn:model_digest"] == again.model.digest()
    assert [b["name"] for b in replaced["assets"]["image"]["eo:bands"]] == ["nir", "red"]  # the bands it holds
    assert not Path(image).exists()
    assert sorted(p.name for p in (out / "tile_03").iterdir()) == sorted(
        ["tile_03.json", f"image-{again.model.digest()}.tif", f"blockmap-{again.model.digest()}.tif"]
    )
