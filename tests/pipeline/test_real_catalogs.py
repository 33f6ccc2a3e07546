"""The default command on items exactly as Earth Search, Planetary Computer and USGS publish them.

The items are the published JSONs of ``tests/data/catalogs`` (see its PROVENANCE.md): their
asset keys, roles, ``eo:bands``, ``raster:bands``, JPEG 2000 alternates, quality and auxiliary
layers are untouched. Only where the pixels are changes: each item is moved onto a small
window (its ``proj:*`` fields, geometry and bbox), and the assets stacrrn has to read (its
reflectance bands at their own 10/20/60/30 m resolutions and its quality asset) are written
there to the loopback S3 from real imagery of ``../shared/data``, with a known gain per item
and band and a cloud over the overlap that only the item's own ``scl``/``qa_pixel`` reveals.
Every other asset keeps its published href and is never read: a run that touched one
would fail.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
import s3fs
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds, transform_geom
from scipy import ndimage

from stacrrn.io.band_choice import choose_assets
from stacrrn.io.stac import gdal_path
from stacrrn.services import RustacAPI
from tests.cli.test_cli import assert_user_error, run_cli
from tests.conftest import S2_TILES, SHARED, needs_schemas, needs_shared, validate_stac, write_raster

CATALOGS = Path(__file__).resolve().parents[1] / "data" / "catalogs"
HAWAII = SHARED / "landsat_hawaii_timeseries" / "Landsat_20230503.tif"

EARTH_SEARCH = [
    "earth-search-sentinel-2-l2a-S2A_13TDE_20231008_0_L2A.json",
    "earth-search-sentinel-2-l2a-S2B_20EPT_20250731_0_L2A.json",
]
PC_LANDSAT = [
    "planetary-computer-landsat-c2-l2-LC09_L2SP_089090_20240417_02_T1.json",
    "planetary-computer-landsat-c2-l2-LC09_L2SP_089087_20240417_02_T2.json",
]
ES_BANDS = ["blue", "coastal", "green", "nir", "nir08", "nir09", "red", "rededge1", "rededge2", "rededge3"]
ES_BANDS += ["swir16", "swir22"]
LANDSAT_BANDS = ["red", "blue", "green", "nir08", "swir16", "swir22", "coastal"]

S2_SOURCE_BAND = {  # which band of the shared Sentinel-2 tile (B2 B3 B4 B5 B6 B7 B8 B8A B11 B12) plays each one
    "coastal": 0, "blue": 0, "green": 1, "red": 2, "rededge": 3, "rededge1": 3, "rededge2": 4, "rededge3": 5,
    "nir": 6, "nir08": 7, "nir09": 7, "swir16": 8, "swir22": 9,
    "B01": 0, "B02": 0, "B03": 1, "B04": 2, "B05": 3, "B06": 4, "B07": 5, "B08": 6, "B8A": 7, "B09": 7,
    "B11": 8, "B12": 9,
}  # fmt: skip
PC_S2 = "planetary-computer-sentinel-2-l2a-S2B_MSIL2A_20240419T095549_R122_T47XML_20240419T123458.json"
PC_S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A"]
USGS = [
    "usgs-landsatlook-landsat-c2l2-sr-LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",
    "usgs-landsatlook-landsat-c2l2-sr-LC09_L2SP_092068_20230607_20230609_02_T1_SR.json",
]
USGS_BANDS = ["coastal", "blue", "green", "red", "nir08", "swir16", "swir22"]
OLI_BAND = {"coastal": 0, "blue": 1, "green": 2, "red": 3, "nir08": 4, "swir16": 5, "swir22": 6}

CLOUD_DN = 9000
SCL_CLEAR, SCL_CLOUD = 4, 9
QA_CLEAR, QA_CLOUD = 21824, 22280  # Landsat C2 QA_PIXEL: clear; high-confidence cloud (bit 3 set)

Pixels = Callable[[str, dict, Affine, tuple[int, int]], "np.ndarray | None"]
"""``(asset key, asset, transform, shape) -> (rows, cols)`` values to write, or ``None`` (not written)."""


def published(name: str) -> dict:
    return json.loads((CATALOGS / name).read_text())


def resolution(item: dict, asset: dict, default: float) -> float:
    """An asset's pixel size as the item declares it (asset, then item ``proj:transform``, then ``gsd``)."""
    for transform in (asset.get("proj:transform"), item["properties"].get("proj:transform")):
        if transform:
            return float(transform[0])
    return float(default)


def stage_item(
    item: dict, epsg: int, origin: tuple[float, float], extent: tuple[float, float], pixels: Pixels, url: str, tmp: Path
) -> dict:
    """The published item moved to a window (``origin`` top-left, ``extent`` width/height in metres).

    Every asset's declared grid moves to the window (at the asset's resolution); assets whose
    ``pixels`` are given are written there and uploaded under ``url``, the others keep their
    published hrefs.
    """
    d = copy.deepcopy(item)
    left, top = origin
    width, height = extent
    fs = s3fs.S3FileSystem()
    for key, asset in d["assets"].items():
        res = resolution(item, asset, 10.0)
        shape = (round(height / res), round(width / res))
        transform = Affine(res, 0, left, 0, -res, top)
        if "proj:transform" in asset or "proj:shape" in asset:  # every declared grid moves with the item
            asset |= {"proj:shape": list(shape), "proj:transform": list(transform)[:6]}
        values = pixels(key, asset, transform, shape)
        if values is None:
            continue
        band = (asset.get("raster:bands") or [{}])[0]
        local = tmp / f"{d['id']}-{key}.tif"
        nodata = band.get("nodata", 0)
        write_raster(local, values[None].astype(band.get("data_type", "uint16")), transform, nodata, f"EPSG:{epsg}")
        href = f"{url}/{d['id']}/{key}.tif"
        fs.put(str(local), href[5:])
        asset |= {"href": href, "proj:shape": list(shape), "proj:transform": list(transform)[:6]}
    props = d["properties"]
    props["proj:epsg"] = epsg
    for key in ("proj:bbox", "proj:centroid", "proj:geometry"):
        props.pop(key, None)
    if "proj:transform" in props:  # an item-wide grid (USGS, Planetary Computer Landsat) moves too
        res = float(props["proj:transform"][0])
        props["proj:shape"] = [round(height / res), round(width / res)]
        props["proj:transform"] = [res, 0.0, left, 0.0, -res, top]
    box = {"type": "Polygon", "coordinates": [[[left, top - height], [left + width, top - height],
           [left + width, top], [left, top], [left, top - height]]]}  # fmt: skip
    d["geometry"] = transform_geom(f"EPSG:{epsg}", "EPSG:4326", box)
    d["bbox"] = list(transform_bounds(f"EPSG:{epsg}", "EPSG:4326", left, top - height, left + width, top))
    d["links"] = []
    return d


def collection(collection_id: str, items: list[dict]) -> dict:
    boxes = np.array([it["bbox"] for it in items])
    bbox = [*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)]
    extent = pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[None, None]]))
    d = pystac.Collection(collection_id, "published item layouts", extent, license="other").to_dict(
        include_self_link=False
    )
    d["links"] = []
    return d


def search_bbox(items: list[dict]) -> str:
    boxes = np.array([it["bbox"] for it in items])
    return ",".join(f"{v:.6f}" for v in [*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)])


def read_json(href: str) -> dict:
    return json.loads(s3fs.S3FileSystem().cat(href[5:]))


def output_items(out: str, ids: list[str]) -> dict[str, dict]:
    return {i: read_json(f"{out}/{i}/{i}.json") for i in ids}


def validate_known(item: dict) -> list[str]:
    """Offline validation against core STAC and every extension whose schema is stored offline.

    Published items declare extensions (sentinel-2, mgrs, classification, ...) whose schemas are
    not in ``../shared/stac-schemas``; they are validated by their publishers, not here.
    """
    index = json.loads((SHARED.parent / "stac-schemas" / "index.json").read_text())
    known = [url for url in item.get("stac_extensions", []) if url in index]
    return validate_stac(item | {"stac_extensions": known})


def check_outputs(items: dict[str, dict], sources: dict[str, dict], normalized: list[str]) -> None:
    """Only the reflectance bands were corrected; they keep their encoding; everything else is carried."""
    for item_id, out in items.items():
        source = sources[item_id]
        assert out["properties"]["rrn:assets"] == normalized
        assert out["properties"]["rrn:bands"] == normalized
        alternates = {c.key for c in choose_assets(pystac.Item.from_dict(source)) if c.alternate_of in normalized}
        ours = {"model", "clear-mask", "blockmap"}
        assert set(out["assets"]) == (set(source["assets"]) - alternates) | ours
        for key in normalized:
            corrected, given = out["assets"][key], source["assets"][key]
            assert corrected["href"] != given["href"] and corrected["href"].startswith(items_prefix(out))
            kept = {k: v for k, v in given.get("raster:bands", [{}])[0].items() if k in ("scale", "offset", "unit")}
            band = corrected["raster:bands"][0]
            assert {k: band[k] for k in kept} == kept and set(band) >= {"data_type", "nodata", "statistics"}
            assert ("scale" in band) == ("scale" in given.get("raster:bands", [{}])[0])
            assert corrected["eo:bands"][0].get("common_name") == given["eo:bands"][0].get("common_name")
        crs = f"EPSG:{source['properties']['proj:epsg']}"
        for key in set(source["assets"]) - set(normalized) - alternates - ours:
            carried = dict(out["assets"][key])  # as published; a grid that relied on the item's CRS gets it
            assert carried.pop("proj:code", crs) == crs and carried == source["assets"][key], key
        assert validate_known(out) == [], item_id


def items_prefix(out: dict) -> str:
    (self_href,) = [ln["href"] for ln in out["links"] if ln["rel"] == "self"]
    return self_href.rsplit("/", 2)[0]


def assert_gains(items: dict[str, dict], first: str, second: str, injected: dict[str, float]) -> None:
    """Correction gains relate the two items as the injected gains do, within 1 %."""
    g1, g2 = items[first]["properties"]["rrn:gain"], items[second]["properties"]["rrn:gain"]
    errors = {band: g2[band] / g1[band] * injected[band] - 1 for band in injected}
    assert max(abs(e) for e in errors.values()) < 0.01, errors


# ---------------------------------------------------------------- Earth Search, Sentinel-2 L2A


@pytest.fixture(scope="module")
def s2_truth() -> np.ndarray:
    """A real Sentinel-2 tile (reflectance x 1000) as L2A digital numbers since baseline 04.00:
    reflectance x 10000 + 1000, which the items' raster:bands (scale 1e-4, offset -0.1) undo."""
    with rasterio.open(S2_TILES[5]) as src:
        return 1000 + 10 * src.read()[:, :288, :288].astype(np.float64)


def s2_pixels(
    truth: np.ndarray, col0: int, gains: dict[str, float], cloudy: bool, constant: dict[str, int] | None = None
) -> Pixels:
    """Pixels of a Sentinel-2 item whose window starts at column ``col0`` of ``truth`` (10 m)."""

    def pixels(key: str, asset: dict, transform: Affine, shape: tuple[int, int]) -> np.ndarray | None:
        f = round(transform.a / 10)
        rows, cols = shape
        cloud = np.zeros((rows, cols), bool)
        if cloudy:  # over the overlap, on whole 60 m pixels
            cloud[96 // f : 156 // f, 12 // f : 48 // f] = True
        if key.lower() == "scl":
            return np.where(cloud, SCL_CLOUD, SCL_CLEAR)
        if key in (constant or {}):
            return np.full(shape, (constant or {})[key])
        names = [b.get("common_name") for b in asset.get("eo:bands", [])]
        if key.endswith("-jp2") or asset.get("roles") == ["visual"] or len(names) != 1 or key not in gains:
            return None
        window = truth[S2_SOURCE_BAND[key], : rows * f, col0 : col0 + cols * f]
        coarse = window.reshape(rows, f, cols, f).mean(axis=(1, 3))
        return np.where(cloud, CLOUD_DN, np.round(coarse * gains[key]))

    return pixels


@needs_shared
@needs_schemas
def test_earth_search_default_run_normalizes_reflectance_bands_only(s3, bucket, tmp_path, s2_truth):
    """``stacrrn run --stac URL -c sentinel-2-l2a --bbox ... --out s3://...``: no --assets, exit 0."""
    rng = np.random.default_rng(22)
    injected = dict(zip(ES_BANDS, rng.uniform(0.85, 1.15, len(ES_BANDS)), strict=True))
    first, second = (published(name) for name in EARTH_SEARCH)
    epsg, left, top = 32613, 500040.0, 4400040.0
    url = f"s3://{bucket}/in"
    staged = [
        stage_item(first, epsg, (left, top), (1800, 2880), s2_pixels(s2_truth, 0, dict.fromkeys(ES_BANDS, 1.0), False),
                   url, tmp_path),
        stage_item(second, epsg, (left + 1080, top), (1800, 2880), s2_pixels(s2_truth, 108, injected, True),
                   url, tmp_path),
    ]  # fmt: skip
    sources = {it["id"]: it for it in staged}
    out = f"s3://{bucket}/out"
    with RustacAPI(collection("sentinel-2-l2a", staged), staged) as api:
        search = ["--stac", api.url, "--collection", "sentinel-2-l2a", "--bbox", search_bbox(staged)]
        preview = run_cli("search", *search)
        assert preview.returncode == 0, preview.stderr
        assert "red-jp2" in preview.stdout and "alternate of 'red'" in preview.stdout
        ambiguous = run_cli("run", *search, "--assets", "rededge", "--out", out)
        assert_user_error(ambiguous, "rededge", "rededge1, rededge2, rededge3", "name one")
        categorical = run_cli("run", *search, "--assets", "red,scl", "--out", out)
        assert_user_error(categorical, "scl", "class codes")
        proc = run_cli("run", *search, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stderr
    items = output_items(out, list(sources))
    check_outputs(items, sources, ES_BANDS)
    assert_gains(items, first["id"], second["id"], injected)
    for item in items.values():  # clouds masked by the items' own scene classification
        assert item["properties"]["rrn:cloud_mask"]["asset"] == "scl"
    # loaded with odc-stac and scaled by the items' raster:bands, outputs are reflectances near the inputs'
    means = physical_means({"in": list(sources.values()), "out": list(items.values())}, "red")
    assert 0.0 < means["in"] < 1.0 and 0.85 / 1.15 < means["out"] / means["in"] < 1.15 / 0.85


ODC_MEANS = """
import json, sys
import odc.stac, pystac
groups, band = json.load(sys.stdin)
means = {}
for kind, dicts in groups.items():
    items = [pystac.Item.from_dict(d) for d in dicts]
    data = odc.stac.load(items, bands=[band], groupby="id", resolution=10, chunks={})[band]
    assert data.size < 10**6, data.shape  # the items' windows, not the published tiles
    data = data.compute()
    encoding = dicts[0]["assets"][band]["raster:bands"][0]
    means[kind] = float((data.where(data != 0) * encoding["scale"] + encoding["offset"]).mean())
print(json.dumps(means))
"""


def physical_means(groups: dict[str, list[dict]], band: str) -> dict[str, float]:
    """Mean of ``band`` over each group of items, loaded by odc-stac and scaled by the items' ``raster:bands``.

    In its own process: odc-stac's readers and the test process's GDAL state stay apart.
    """
    proc = subprocess.run(
        [sys.executable, "-c", ODC_MEANS], input=json.dumps([groups, band]), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@needs_shared
@needs_schemas
def test_planetary_computer_sentinel2_default_run(s3, bucket, tmp_path, s2_truth):
    """Planetary Computer's layout: B01..B12 at 10/20/60 m, an upper-case SCL, AOT/WVP/visual, no raster:bands."""
    rng = np.random.default_rng(47)
    injected = dict(zip(PC_S2_BANDS, rng.uniform(0.85, 1.15, len(PC_S2_BANDS)), strict=True))
    layout = published(PC_S2)
    epsg, left, top = 32647, 400020.0, 8900040.0
    url = f"s3://{bucket}/in"
    staged = []
    for k, (col0, gains) in enumerate([(0, dict.fromkeys(PC_S2_BANDS, 1.0)), (108, injected)]):
        item = copy.deepcopy(layout) | {"id": f"{layout['id']}-{k}"}  # one layout, two positions
        pixels = s2_pixels(s2_truth, col0, gains, cloudy=k == 1)
        staged.append(stage_item(item, epsg, (left + 10 * col0, top), (1800, 2880), pixels, url, tmp_path))
    sources = {it["id"]: it for it in staged}
    out = f"s3://{bucket}/out"
    with RustacAPI(collection("sentinel-2-l2a", staged), staged) as api:
        ambiguous = run_cli("run", "--stac", api.url, "-c", "sentinel-2-l2a", "--assets", "rededge", "--out", out)
        assert_user_error(ambiguous, "'rededge' matches B05, B06, B07, B8A", "name one")
        proc = run_cli("run", "--stac", api.url, "-c", "sentinel-2-l2a", "--bbox", search_bbox(staged), "--out", out)
    assert proc.returncode == 0, proc.stderr
    items = output_items(out, list(sources))
    check_outputs(items, sources, PC_S2_BANDS)  # no raster:bands in, so no scale/offset invented out
    assert_gains(items, staged[0]["id"], staged[1]["id"], injected)
    assert all(it["properties"]["rrn:cloud_mask"]["asset"] == "SCL" for it in items.values())


def usgs_pixels(truth: np.ndarray, gains: dict[str, float], cloudy: bool) -> Pixels:
    """Pixels of a USGS Landsat item on a shared 30 m grid (a time series: same ground, another date)."""

    def pixels(key: str, asset: dict, transform: Affine, shape: tuple[int, int]) -> np.ndarray | None:
        cloud = np.zeros(shape, bool)
        if cloudy:
            cloud[100:180, 100:200] = True
        if key == "qa_pixel":
            return np.where(cloud, QA_CLOUD, QA_CLEAR)
        if key not in gains:
            return None
        values = truth[OLI_BAND[key], : shape[0], : shape[1]]
        return np.where(cloud, 30000, np.round(values * gains[key]))

    return pixels


@needs_shared
@needs_schemas
def usgs_series(bucket: str, tmp_path: Path, truth: np.ndarray) -> tuple[list[dict], list[Path], dict[str, float]]:
    """The two USGS items staged on S3 and written as item files; the 2023 date with injected gains and a cloud."""
    rng = np.random.default_rng(2023)
    injected = dict(zip(USGS_BANDS, rng.uniform(0.85, 1.15, len(USGS_BANDS)), strict=True))
    url = f"s3://{bucket}/in"
    staged, files = [], []
    for name, gains, cloudy in [(USGS[0], dict.fromkeys(USGS_BANDS, 1.0), False), (USGS[1], injected, True)]:
        item = stage_item(published(name), 32615, (300000.0, 4500000.0), (9000, 12000),
                          usgs_pixels(truth, gains, cloudy), url, tmp_path)  # fmt: skip
        staged.append(item)
        files.append(tmp_path / f"{item['id']}.json")
        files[-1].write_text(json.dumps(item))
    return staged, files, injected


def test_usgs_landsat_time_series_from_item_files(s3, bucket, tmp_path, landsat_truth):
    """Two published USGS Landsat C2 L2 items (2020, 2023) as a time series read from item files; the
    2023 date has a cloud its own qa_pixel flags."""
    staged, files, injected = usgs_series(bucket, tmp_path, landsat_truth[0])
    out = f"s3://{bucket}/out"
    proc = run_cli("run", *map(str, files), "--mode", "timeseries", "--out", out)
    assert proc.returncode == 0, proc.stderr
    sources = {it["id"]: it for it in staged}
    items = output_items(out, list(sources))
    check_outputs(items, sources, USGS_BANDS)
    assert_gains(items, staged[0]["id"], staged[1]["id"], injected)
    assert items[staged[1]["id"]]["properties"]["rrn:cloud_mask"]["clear_percent"] < 100


def test_usgs_landsat_time_series_as_a_zarr_datacube(s3, bucket, tmp_path, landsat_truth):
    """The same published items, ``--format zarr``: one store of both dates under their USGS band names,
    the cloudy date's pixels under its cloud included, equal to the COGs of the same model."""
    import xarray as xr

    staged, files, injected = usgs_series(bucket, tmp_path, landsat_truth[0])
    for fmt in ("cog", "zarr"):
        proc = run_cli(
            "run", *map(str, files), "--mode", "timeseries", "--format", fmt, "--out", f"s3://{bucket}/{fmt}"
        )
        assert proc.returncode == 0, proc.stderr
    ids = [it["id"] for it in staged]
    cogs = output_items(f"s3://{bucket}/cog", ids)
    (cube_key,) = [k for k in s3fs.S3FileSystem().ls(f"{bucket}/zarr") if k.endswith("-cube")]
    item = read_json(f"s3://{cube_key}/{cube_key.rsplit('/', 1)[1]}.json")
    assert validate_stac(item) == [] and item["properties"]["rrn:images"] == ids  # datacube schema included
    assert item["properties"]["rrn:model_digest"] == cogs[ids[0]]["properties"]["rrn:model_digest"]
    cube = xr.open_zarr(item["assets"]["zarr"]["href"], mask_and_scale=False)
    assert set(USGS_BANDS) <= set(cube.data_vars) and cube["id"].values.tolist() == ids
    for k, item_id in enumerate(ids):
        for band in USGS_BANDS:
            with rasterio.open(gdal_path(cogs[item_id]["assets"][band]["href"])) as src:
                assert np.array_equal(cube[band].isel(time=k).values, src.read(1)), (item_id, band)
    gains = cube["rrn_gain"].values
    for b, band in enumerate(cube["band"].values.tolist()):
        if band in injected:  # the 2023 gain undoes the injected one relative to 2020, within 1 %
            assert abs(gains[1, b] / gains[0, b] * injected[band] - 1) < 0.01, band


@needs_shared
def test_earth_search_empty_and_constant_layers_named_explicitly_are_left_unchanged(s3, bucket, tmp_path, s2_truth):
    """``--assets red,cloud,snow`` on a clear scene: cloud probability 0 everywhere (its nodata value), snow
    probability a constant 3. The run warns about both and normalizes red; it does not fail."""
    newer = published(EARTH_SEARCH[1])
    epsg, left, top = 32720, 300000.0, 7000020.0
    url = f"s3://{bucket}/in"
    staged = []
    for k, col0 in enumerate((0, 108)):
        item = copy.deepcopy(newer) | {"id": f"{newer['id']}-{k}"}  # one layout, two positions
        pixels = s2_pixels(s2_truth, col0, {"red": 1.0 + 0.1 * k}, False, constant={"cloud": 0, "snow": 3})
        staged.append(stage_item(item, epsg, (left + 10 * col0, top), (1800, 2880), pixels, url, tmp_path))
    out = f"s3://{bucket}/out"
    with RustacAPI(collection("sentinel-2-l2a", staged), staged) as api:
        proc = run_cli("run", "--stac", api.url, "-c", "sentinel-2-l2a", "--assets", "red,cloud,snow", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "band cloud (asset 'cloud', band 1) is valid on only 0.0 %" in proc.stderr
    assert "band snow varies in no overlap in both images at once" in proc.stderr
    items = list(output_items(out, [it["id"] for it in staged]).values())
    assert all(it["properties"]["rrn:assets"] == ["red", "snow"] for it in items)
    assert all(
        it["assets"]["cloud"]["href"] == src["assets"]["cloud"]["href"] for it, src in zip(items, staged, strict=True)
    )
    gains = [it["properties"]["rrn:gain"] for it in items]
    assert [g["snow"] for g in gains] == [1.0, 1.0]
    assert abs(gains[1]["red"] / gains[0]["red"] * 1.1 - 1) < 0.01


# ---------------------------------------------------------------- Planetary Computer, Landsat C2 L2


@pytest.fixture(scope="module")
def landsat_truth() -> tuple[np.ndarray, Affine]:
    """A real Landsat scene, smoothed to 90 m detail on a 30 m grid of UTM 55 (as published: EPSG:32655
    with southern northings), 27 x 18 km ending 12 km east of 150 E, the border of zones 55 and 56 at 43 S."""
    with rasterio.open(HAWAII) as src:
        scene = src.read().astype(np.float64)
    big = np.stack([ndimage.zoom(band, 3, order=3) for band in scene])[:, :600, :900]
    (x,), (y,) = rasterio.warp.transform("EPSG:4326", "EPSG:32655", [150.0], [-43.0])
    frame = Affine(30, 0, round((x - 15000) / 30) * 30.0, 0, -30, round(y / 30) * 30.0)
    return np.clip(big, 1, None), frame


def landsat_pixels(truth: np.ndarray, frame: Affine, gains: dict[str, float], cloudy: bool, epsg: int) -> Pixels:
    """Pixels of a Landsat item on any UTM grid: the truth reprojected (bilinear) onto it."""

    def pixels(key: str, asset: dict, transform: Affine, shape: tuple[int, int]) -> np.ndarray | None:
        cloud = np.zeros(shape, bool)
        if cloudy:
            cloud[200:300, 20:60] = True
        if key == "qa_pixel":
            return np.where(cloud, QA_CLOUD, QA_CLEAR)
        if key not in gains:
            return None
        values = np.zeros(shape)
        reproject(truth[OLI_BAND[key]], values, src_transform=frame, src_crs=CRS.from_epsg(32655),
                  dst_transform=transform, dst_crs=CRS.from_epsg(epsg), resampling=Resampling.bilinear, src_nodata=0,
                  dst_nodata=0)  # fmt: skip
        return np.where(values > 0, np.where(cloud, 30000, np.round(values * gains[key])), 0)

    return pixels


@needs_shared
@needs_schemas
def test_planetary_computer_landsat_across_utm_zones(s3, bucket, tmp_path, landsat_truth):
    """Two published Landsat C2 L2 items in UTM zones 55 and 56, their windows overlapping across 150 E."""
    truth, frame = landsat_truth
    rng = np.random.default_rng(56)
    injected = dict(zip(LANDSAT_BANDS, rng.uniform(0.85, 1.15, len(LANDSAT_BANDS)), strict=True))
    west, east = (published(name) for name in PC_LANDSAT)
    assert (west["properties"]["proj:epsg"], east["properties"]["proj:epsg"]) == (32655, 32656)
    url = f"s3://{bucket}/in"
    a = stage_item(
        west,
        32655,
        (frame.c, frame.f),
        (15000, 18000),
        landsat_pixels(truth, frame, dict.fromkeys(LANDSAT_BANDS, 1.0), False, 32655),
        url,
        tmp_path,
    )
    # the east window's corner: 10.5 km east of the west window's, 4.5 km west of 150 E
    left, top = rasterio.warp.transform("EPSG:32655", "EPSG:32656", [frame.c + 10500], [frame.f])
    left, top = round(left[0] / 30) * 30.0, round(top[0] / 30) * 30.0
    b = stage_item(east, 32656, (left, top), (12000, 15000),
                   landsat_pixels(truth, frame, injected, True, 32656), url, tmp_path)  # fmt: skip
    staged = [a, b]
    sources = {it["id"]: it for it in staged}
    out = f"s3://{bucket}/out"
    with RustacAPI(collection("landsat-c2-l2", staged), staged) as api:
        proc = run_cli("run", "--stac", api.url, "-c", "landsat-c2-l2", "--bbox", search_bbox(staged), "--out", out)
    assert proc.returncode == 0, proc.stderr
    items = output_items(out, list(sources))
    check_outputs(items, sources, LANDSAT_BANDS)
    assert_gains(items, west["id"], east["id"], injected)
    for item in items.values():
        assert item["properties"]["rrn:cloud_mask"]["asset"] == "qa_pixel"
