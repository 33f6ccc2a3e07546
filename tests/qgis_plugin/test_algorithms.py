"""Every stacrrn algorithm run through ``processing.run`` in headless QGIS, against the CLI where it has one."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import BAHAMAS, S2_TILES, SHARED, needs_shared
from tests.qgis_plugin.harness import needs_qgis, run_jobs

pytestmark = [needs_qgis, needs_shared]

STACRRN = str(Path(sys.executable).with_name("stacrrn"))  # the project venv's console script
TILES = [str(t) for t in S2_TILES]
MATCH_TILES = [TILES[0], TILES[1], TILES[4]]  # an L of three overlapping Sentinel-2 tiles
HAWAII = SHARED / "landsat_hawaii_timeseries"
DATES = [str(HAWAII / f"Landsat_{d}.tif") for d in ("20210326", "20220313", "20240302")]
SPECTRAL = {
    "BAND_NAMES": "coastal,blue,green,red,nir08,swir16,swir22",
    "REFLECTANCE_SCALE": 2e-5,
    "REFLECTANCE_OFFSET": -0.1,
}


def stem(path: str) -> str:
    return Path(path).stem


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([STACRRN, *args, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_same_rasters(cli_dir: Path, qgis_dir: Path) -> int:
    """Every GeoTIFF the CLI wrote exists in the plugin's output with the same pixels and georeferencing."""
    files = sorted(p.relative_to(cli_dir) for p in cli_dir.rglob("*.tif"))
    assert files
    for rel in files:
        with rasterio.open(cli_dir / rel) as a, rasterio.open(qgis_dir / rel) as b:
            assert (a.dtypes, str(a.nodata), a.crs, a.transform) == (b.dtypes, str(b.nodata), b.crs, b.transform), rel
            assert a.read().tobytes() == b.read().tobytes(), rel  # byte for byte (NaN nodata too)
    return len(files)


def assert_same_model(cli_dir: Path, qgis_dir: Path) -> None:
    a, b = (json.loads((d / "stacrrn-model.json").read_text()) for d in (cli_dir, qgis_dir))
    for model in (a, b):  # polygon files: the CLI's GeoJSON, the plugin's copy of a GeoPackage layer
        for polygons in (model["quality"]["settings"]["pif"] or {}).get("exclude", []):
            polygons.clear()
    assert {k: v for k, v in a.items() if k != "quality"} == {k: v for k, v in b.items() if k != "quality"}
    # quality figures: the same up to the last bits (the two Pythons may sum some means in another order)
    assert_close(a["quality"], b["quality"])


def assert_close(a: object, b: object, where: str = "quality") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9, nan_ok=True), where
    else:
        assert a == b, where


def test_match_gives_the_cli_pixels_and_loads_the_outputs(tmp_path):
    ref = MATCH_TILES[0]
    proc = cli("match", *MATCH_TILES, "--out", str(tmp_path / "cli"), "-r", ref, "--blocks", "8", "--workers", "2")
    params = {"INPUT": MATCH_TILES, "REFERENCES": [ref], "BLOCKS": 8, "OUTPUT_FOLDER": str(tmp_path / "qgis")}
    (job,) = run_jobs(tmp_path, [{"alg": "stacrrn:match", "params": params}])
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert job["ok"], job
    assert assert_same_rasters(tmp_path / "cli", tmp_path / "qgis") == 7  # 3 corrected + 3 fields + reference
    assert_same_model(tmp_path / "cli", tmp_path / "qgis")
    outputs = [str(tmp_path / "qgis" / f"{stem(t)}.tif") for t in MATCH_TILES]
    assert job["results"]["OUTPUT_LAYERS"] == outputs
    assert job["results"]["MODEL"] == str(tmp_path / "qgis" / "stacrrn-model.json")
    assert job["layers"] == {
        p: {"name": f"{stem(t)} (normalized)", "output": "OUTPUT_LAYERS", "valid": True}
        for p, t in zip(outputs, MATCH_TILES, strict=True)
    }
    progress = job["progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) >= 4
    assert job["texts"][0] == "stacrrn: statistics" and "stacrrn: apply" in job["texts"]


@pytest.mark.parametrize(("extent", "decay"), [("overlaps", 3.0), ("image", 2.0)])
def test_match_local_extent_and_decay_give_the_cli_pixels(tmp_path, extent, decay):
    quadrants = [str(p) for p in BAHAMAS]  # four small Landsat 7 RGB quadrants (uint8)
    options = ["--local-extent", extent, "--local-decay", str(decay), "--blocks", "8"]
    proc = cli("match", *quadrants, "--out", str(tmp_path / "cli"), *options)
    params = {
        "INPUT": quadrants,
        "LOCAL_EXTENT": extent,
        "LOCAL_DECAY": decay,
        "BLOCKS": 8,
        "OUTPUT_FOLDER": str(tmp_path / "qgis"),
    }
    (job,) = run_jobs(tmp_path, [{"alg": "stacrrn:match", "params": params}])
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert job["ok"], job
    assert assert_same_rasters(tmp_path / "cli", tmp_path / "qgis") >= len(quadrants)
    assert_same_model(tmp_path / "cli", tmp_path / "qgis")


def test_cancel_mid_run_leaves_no_outputs(tmp_path):
    fresh, used = tmp_path / "fresh", tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("kept")
    # the apply stage spans 60-100 % of the bar: cancel once the first corrected raster is written
    jobs = [
        {
            "alg": "stacrrn:match",
            "params": {"INPUT": MATCH_TILES, "OUTPUT_FOLDER": str(out)},
            "cancel_at": 61,
            "watch": str(out),
        }
        for out in (fresh, used)
    ]
    done = run_jobs(tmp_path, jobs)
    for job, out in zip(done, (fresh, used), strict=True):
        assert job["canceled"] and not job["ok"]
        assert job["error"] == f"stacrrn: canceled; the partial outputs in {out} were removed"
        assert f"{stem(MATCH_TILES[0])}.tif" in job["seen_at_cancel"]  # there were partial outputs ...
        assert job["layers"] == {} and job["progress"][-1] < 100
    assert not fresh.exists()  # ... and now the run left nothing, not even its folder
    assert [p.name for p in used.iterdir()] == ["mine.txt"]


def polygon_files(folder: Path) -> tuple[str, str]:
    """A polygon over the Hawaii scenes as GeoJSON, and the same as one layer of a two-layer GeoPackage."""
    import pyogrio
    import shapely

    def write(path: Path, geometry: shapely.Geometry, **kwargs: str) -> None:
        wkb = np.array([shapely.to_wkb(geometry)], dtype=object)
        pyogrio.raw.write(path, wkb, [], [], geometry_type="Polygon", crs="EPSG:32605", **kwargs)

    changed = shapely.box(206000, 2211000, 210000, 2214000)
    write(folder / "changed.geojson", changed, driver="GeoJSON")
    write(folder / "layers.gpkg", shapely.box(203400, 2209600, 204000, 2210000), layer="other", driver="GPKG")
    write(folder / "layers.gpkg", changed, layer="changed", driver="GPKG")
    return str(folder / "changed.geojson"), f"{folder / 'layers.gpkg'}|layername=changed"


def test_clouds_pif_and_match_with_masks_and_pifs(tmp_path):
    masks, pifs, qgis_out = tmp_path / "masks", tmp_path / "pifs", tmp_path / "qgis"
    clear = [str(masks / f"{stem(d)}-clear.tif") for d in DATES]
    geojson, gpkg_layer = polygon_files(tmp_path)  # the plugin gets the GeoPackage layer (written out as a copy)
    match = {
        "INPUT": DATES,
        "REFERENCES": [DATES[2]],
        "METHOD": "global",
        "MASKS": clear,
        "MASK_KIND": "clear",
        "PIF": ["imad"],
        "EXCLUDE": [gpkg_layer],
        "ESTIMATOR": "orthogonal",
        "OUTPUT_FOLDER": str(qgis_out),
    }
    jobs = [
        {
            "alg": "stacrrn:clouds",
            "params": {"INPUT": DATES, "CLOUD_MASK": "spectral", **SPECTRAL, "OUTPUT_FOLDER": str(masks)},
        },
        {"alg": "stacrrn:pif", "params": {"INPUT": DATES[1:], "PIF": ["imad"], "OUTPUT_FOLDER": str(pifs)}},
        {"alg": "stacrrn:match", "params": match},
        {"alg": "stacrrn:clouds", "params": {"INPUT": DATES[:2], "OUTPUT_FOLDER": str(tmp_path / "nothing")}},
    ]
    clouds, pif, matched, nothing = run_jobs(tmp_path, jobs)
    assert clouds["ok"] and clouds["results"]["OUTPUT_LAYERS"] == clear, clouds
    assert {p: v["name"] for p, v in clouds["layers"].items()} == {
        c: f"{stem(d)} clear mask" for c, d in zip(clear, DATES, strict=True)
    }
    for path in clear:
        with rasterio.open(path) as src:
            values = set(np.unique(src.read(1)).tolist())
        assert values <= {0, 1, 255} and 1 in values
    with rasterio.open(clear[1]) as src:  # the cloudy date has clouds
        assert (src.read(1) == 0).mean() > 0.01
    assert pif["ok"], pif
    pair = f"{stem(DATES[1])}__{stem(DATES[2])}"
    assert pif["results"]["OUTPUT_LAYERS"] == [str(pifs / f"pif-{pair}.tif")]
    assert [v["name"] for v in pif["layers"].values()] == [f"{pair} PIFs"]
    assert "stacrrn: pif fit" in pif["texts"] and "stacrrn: pif masks" in pif["texts"]
    # the clear masks as mask rasters (matched to the dates by name) and IR-MAD PIFs: the same as the CLI's
    assert matched["ok"], matched
    masks_args = [a for d, c in zip(DATES, clear, strict=True) for a in ("--mask", f"{stem(d)}={c}:clear")]
    proc = cli(
        "match",
        *DATES,
        "--out",
        str(tmp_path / "cli"),
        "-r",
        DATES[2],
        "--method",
        "global",
        *masks_args,
        "--pif",
        "imad",
        "--exclude",
        geojson,
        "--estimator",
        "orthogonal",
        "--workers",
        "2",
    )
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert_same_rasters(tmp_path / "cli", qgis_out)
    assert_same_model(tmp_path / "cli", qgis_out)
    # stacrrn's own one-line error, as a Processing error
    assert not nothing["ok"] and nothing["error"].startswith("nothing to mask: give --mask")
    assert not (tmp_path / "nothing").exists()


def test_mosaic_seamlines_and_report(tmp_path):
    four = [TILES[0], TILES[1], TILES[4], TILES[5]]
    fitted, mosaic_out, lines, report = (tmp_path / n for n in ("match", "mosaic", "lines", "report"))
    jobs = [
        {
            "alg": "stacrrn:match",
            "params": {"INPUT": four, "METHOD": "global", "BANDS": "1,2,3", "OUTPUT_FOLDER": str(fitted)},
        },
        {
            "alg": "stacrrn:mosaic",
            "params": {
                "INPUT": four,
                "BANDS": "1,2,3",
                "FEATHER": 8,
                "MODEL": str(fitted / "stacrrn-model.json"),
                "OUTPUT_FOLDER": str(mosaic_out),
            },
        },
        {
            "alg": "stacrrn:seamlines",
            "params": {
                "INPUT": four,
                "SEAMS": "least-cost",
                "PRIORITY": [four[0]],
                "PRIORITY_WEIGHT": 3,
                "OUTPUT_FOLDER": str(lines),
            },
        },
        {"alg": "stacrrn:report", "params": {"RUN": str(fitted), "RGB": "3,2,1", "OUTPUT_FOLDER": str(report)}},
    ]
    matched, mosaic, seamlines, made = run_jobs(tmp_path, jobs)
    assert matched["ok"] and mosaic["ok"] and seamlines["ok"] and made["ok"], (mosaic, seamlines, made)
    assert mosaic["results"]["MOSAIC"] == str(mosaic_out / "mosaic.tif")
    names = {v["name"]: v for v in mosaic["layers"].values()}
    assert set(names) == {"stacrrn mosaic", "stacrrn seamlines", "stacrrn footprints"}
    assert all(v["valid"] for v in names.values())
    item = json.loads((mosaic_out / "mosaic.json").read_text())
    assert item["properties"]["rrn:mosaic"]["model"] and item["properties"]["rrn:mosaic"]["feather"] == 8
    with rasterio.open(mosaic_out / "mosaic.tif") as src:
        assert src.count == 3 and src.dtypes[0] == "uint16"
    assert sorted(p.name for p in lines.iterdir()) == ["footprints.geojson", "seamlines.geojson", "seamlines.parquet"]
    features = json.loads((lines / "seamlines.geojson").read_text())["features"]
    assert {f["properties"]["image"]: f["properties"]["priority"] for f in features}[stem(four[0])] == 3
    assert sorted(v["name"] for v in seamlines["layers"].values()) == ["stacrrn footprints", "stacrrn seamlines"]
    assert made["results"]["OUTPUT_HTML"] == str(report / "report.html")
    assert "Spectral profiles" in (report / "report.html").read_text()
    assert (report / "profiles.png").stat().st_size > 1000


@pytest.fixture
def stac_api(s3, bucket, tmp_path):
    """Four sample tiles as single-band COG assets in S3, their items served by ``rustac serve``."""
    import stacrrn
    from stacrrn.samples import write_sample_mosaic
    from stacrrn.services import RustacAPI

    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=128, overlap=32)
    when = [dt.datetime(2024, 6, 1, 10, tzinfo=dt.UTC)] * len(tiles.paths)
    coll, items = stacrrn.catalog_rasters(
        tiles.paths,
        f"s3://{bucket}/in",
        "tiles",
        datetimes=when,
        band_names=["blue", "green", "red", "nir08"],
        split_bands=True,
    )
    with RustacAPI(coll, items) as api:
        yield api.url, tiles


def test_stac_search_and_run_to_s3(stac_api, bucket, tmp_path):
    import s3fs

    url, tiles = stac_api
    search = {
        "STAC_URL": url,
        "COLLECTIONS": "tiles",
        "EXTENT": str(tiles.paths[0]),  # a layer's extent, in UTM
        "START": "2024-05-01T00:00:00Z",
        "END": "2024-07-01T00:00:00Z",
        "OUTPUT": str(tmp_path / "items.geojson"),
    }
    run = {
        "STAC_URL": url,
        "COLLECTIONS": "tiles",
        "EXTENT": "499000,503000,4497000,4501000 [EPSG:32633]",
        "ASSETS": "red,nir08",
        "REFERENCES": "tile_00",
        "METHOD": "global",
        "S3_PREFIX": f"s3://{bucket}/out",
        "MOSAIC": True,
        "FEATHER": 4,
    }
    bad = run | {"ASSETS": "red,nope", "S3_PREFIX": f"s3://{bucket}/bad"}
    empty = search | {
        "START": "2020-01-01T00:00:00Z",
        "END": "2020-02-01T00:00:00Z",
        "OUTPUT": str(tmp_path / "none.geojson"),
    }
    corner = search | {"EXTENT": "502000,502200,4497800,4497900 [EPSG:32633]", "OUTPUT": str(tmp_path / "c.geojson")}
    jobs = [
        {"alg": "stacrrn:stac_search", "params": search},
        {"alg": "stacrrn:stac_run", "params": run},
        {"alg": "stacrrn:stac_run", "params": bad},
        {"alg": "stacrrn:stac_search", "params": empty},
        {"alg": "stacrrn:stac_search", "params": corner},
    ]
    found, ran, failed, none, corner = run_jobs(tmp_path, jobs)
    assert found["ok"] and found["results"]["COUNT"] == 4, found
    assert [v["name"] for v in found["layers"].values()] == ["stacrrn search: 4 items"]
    assert all(v["valid"] for v in found["layers"].values())
    assert ran["ok"], ran
    layers = ran["results"]["OUTPUT_LAYERS"]
    assert len(layers) == 8 and all(p.startswith(f"/vsis3/{bucket}/out/tile_0") for p in layers)
    names = [v["name"] for v in ran["layers"].values()]
    assert "tile_00 red (normalized)" in names and "stacrrn mosaic" in names and "stacrrn seamlines" in names
    assert all(v["valid"] for v in ran["layers"].values())  # QGIS reads them from S3 through /vsis3/
    assert ran["results"]["COLLECTION"] == f"s3://{bucket}/out/collection.json"
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    assert fs.exists(f"{bucket}/out/collection.json") and fs.exists(f"{bucket}/out/mosaic/mosaic.tif")
    assert not failed["ok"] and failed["error"].startswith("--assets 'nope' is neither an asset key nor a band name")
    assert not fs.exists(f"{bucket}/bad")
    assert not none["ok"] and none["error"].startswith(f"the search of {url} selected no item"), none
    assert corner["ok"] and corner["results"]["COUNT"] == 1  # a UTM box inside tile_03 only, searched in WGS 84
