"""Ground truth for PIFs and masks: a time series with injected gains, a real change and clouds.

The series is built from a clear Landsat date of ../shared/data (Hawaii, 2024-03-02): each
date is that image with a known per-band gain/offset and sensor noise; two dates also get a
new irrigated field (real land change: dark red, bright NIR) and thick clouds. The model must recover the gains
within 1 % when PIFs or masks keep those pixels out, and is measurably biased without.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio
import s3fs
import shapely

from stacrrn.errors import EmptyImageError
from stacrrn.io.stac import Search
from stacrrn.options import PifOptions
from stacrrn.pipeline.match import match
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.services import RustacAPI
from tests.conftest import SHARED, needs_shared, validate_stac, write_raster

BASE = SHARED / "landsat_hawaii_timeseries" / "Landsat_20240302.tif"
BANDS = ["blue", "green", "red", "nir08"]
GAINS = np.array([[1, 1, 1, 1], [1.1, 1.08, 1.12, 0.92], [0.9, 0.93, 0.88, 1.1], [1.05, 0.95, 1.0, 1.15]])
OFFSETS = np.array([[0, 0, 0, 0], [300, -200, 150, 400], [-250, 100, 300, -300], [120, 200, -100, 50]])
CLOUDS = {1: [(60, 110), (180, 210)], 2: [(60, 160), (180, 170)]}  # (row, col) centres, radius 25 px
RADIUS = 25


def field_box(k: int) -> tuple[int, int, int, int]:
    return 40 + 30 * k, 200, 110 + 30 * k, 300  # rows, cols of the new field


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Four dates: paths, the truth of every change, and the base image's georeferencing."""
    tmp = tmp_path_factory.mktemp("series")
    with rasterio.open(BASE) as src:
        base = src.read([2, 3, 4, 5]).astype(np.float64)
        transform, crs = src.transform, src.crs.to_string()
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0 : base.shape[1], 0 : base.shape[2]]
    paths, changed = [], []
    for k in range(4):
        surface = base.copy()  # what is on the ground (and in the sky) at date k, in date 0's radiometry
        change = np.zeros(base.shape[1:], bool)
        if k in CLOUDS:
            r0, c0, r1, c1 = field_box(k)
            change[r0:r1, c0:c1] = True
            surface[:, change] = np.array([8000, 9500, 7500, 25000])[:, None]  # reflectance .06 .09 .05 .40
            for cy, cx in CLOUDS[k]:
                cloud = (yy - cy) ** 2 + (xx - cx) ** 2 < RADIUS**2
                surface[:, cloud] = 0.2 * surface[:, cloud] + 25000
                change |= cloud
        img = surface * GAINS[k][:, None, None] + OFFSETS[k][:, None, None]  # the sensor sees it all
        img += rng.normal(0, 1, img.shape) * (0.02 * base.std(axis=(1, 2)))[:, None, None]
        data = np.clip(np.rint(img), 1, 65535).astype("uint16")
        paths.append(write_raster(tmp / f"d{k}.tif", data, transform, 0, crs=crs))
        changed.append(change)
    return paths, changed, transform, crs


def gain_error(model) -> np.ndarray:
    return np.abs(model.global_fit.gains * GAINS - 1).max(axis=0)


@needs_shared
def test_stac_time_series_with_imad_pifs_recovers_the_gains_the_unmasked_model_misses(s3, bucket, series):
    paths, _, _, _ = series
    dates = [dt.datetime(2024, 3, 2, tzinfo=dt.UTC) + dt.timedelta(days=16 * k) for k in range(4)]
    coll, items = catalog_rasters(paths, f"s3://{bucket}/in", "series", band_names=BANDS, datetimes=dates)
    with RustacAPI(coll, items) as api:
        search = Search(stac=api.url, collections=("series",))
        common = dict(assets=BANDS, mode="timeseries", references=["d0"], method="global", cloud_mask="none")
        pif = run(search, f"s3://{bucket}/pif", pif=PifOptions.parse(["imad"]), star=True, **common)
        raw = run(search, f"s3://{bucket}/raw", **common)
    err_pif, err_raw = gain_error(pif.model), gain_error(raw.model)
    print(f"max gain error per band: IR-MAD PIFs {np.round(err_pif, 5)}, unmasked {np.round(err_raw, 3)}")
    assert err_pif.max() < 0.01  # within 1 %
    assert err_raw.min() > 0.1  # the change and the clouds bias the unmasked model
    # held-out PIFs: the corrected dates agree with the reference, the raw ones did not
    holdout = {row["image"]: row for row in pif.model.quality["holdout"]}
    for k in (1, 2, 3):
        row = holdout[f"d{k}"]
        assert row["against"] == ["d0"]
        for b, band in enumerate(row["bands"]):
            before, after = band["before"], band["after"]
            assert after["rmse"] < 0.25 * before["rmse"]  # what is left is the injected noise
            assert before["variance_ratio"] == pytest.approx(GAINS[k, b] ** 2, rel=0.02)
            assert after["variance_ratio"] == pytest.approx(1.0, abs=0.02)
    pairs = {tuple(p["images"]): p for p in pif.model.quality["pairs"]}
    assert set(pairs) == {("d0", "d1"), ("d0", "d2"), ("d0", "d3")}  # the star: every date with the reference
    assert 0 < pairs[("d0", "d1")]["used_pixels"] < pairs[("d0", "d1")]["overlap_pixels"]
    item = pif.items[1]
    assert item["properties"]["rrn:pif"]["methods"] == ["imad"]
    assert item["properties"]["rrn:validation"]["bands"][0]["band"] == "blue"
    assert not validate_stac(item)
    model = json.loads(s3fs.S3FileSystem().cat(pif.model_href.removeprefix("s3://")))
    assert model["quality"]["settings"]["pif"]["threshold"] == 0.5


@needs_shared
def test_pif_criteria_combine_ndvi_with_cloud_masks_and_vector_exclusions(series, tmp_path):
    paths, _, transform, crs = series
    # exclusion polygons drawn around the field and the clouds of dates 1 and 2 (in map coordinates)
    shapes = []
    for k in CLOUDS:
        r0, c0, r1, c1 = field_box(k)
        shapes.append(shapely.box(*(transform @ (c0 - 2, r1 + 2)), *(transform @ (c1 + 2, r0 - 2))))
        shapes += [shapely.Point(transform @ (cx + 0.5, cy + 0.5)).buffer(30 * (RADIUS + 3)) for cy, cx in CLOUDS[k]]
    fc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)} for g in shapes],
    }
    exclude = tmp_path / "changes.geojson"
    exclude.write_text(json.dumps(fc | {"crs": {"type": "name", "properties": {"name": crs}}}))
    common = dict(references=["d0"], method="global", band_names=BANDS, reflectance=(2e-5, -0.1))
    vector = match(paths, tmp_path / "vector", pif=PifOptions.parse([], exclude=[str(exclude)]), **common)
    ndvi = match(paths, tmp_path / "ndvi", pif=PifOptions.parse(["ndvi"]), cloud_mask="spectral", **common)
    both = match(paths, tmp_path / "both", pif=PifOptions.parse(["imad", "ndvi"]), cloud_mask="spectral", **common)
    errors = {name: gain_error(r.model) for name, r in (("vector", vector), ("ndvi", ndvi), ("imad+ndvi", both))}
    print({k: np.round(v, 4).tolist() for k, v in errors.items()})
    assert errors["vector"].max() < 0.01 and errors["imad+ndvi"].max() < 0.01
    # NDVI limits leave out the new green field, the cloud test the clouds: within 1 % too
    assert errors["ndvi"].max() < 0.01
    used = {tuple(p["images"]): p["used_pixels"] for p in both.model.quality["pairs"]}
    assert (
        used[("d0", "d1")] < {tuple(p["images"]): p["used_pixels"] for p in ndvi.model.quality["pairs"]}[("d0", "d1")]
    )


@needs_shared
def test_mask_rasters_on_another_grid_and_crs_are_resampled(series, tmp_path):
    paths, changed, transform, crs = series
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    masks = {}
    for k in CLOUDS:
        clear = (~changed[k]).astype("uint8")[None]
        h, w = clear.shape[1:]
        bounds = rasterio.transform.array_bounds(h, w, transform)
        dst_t, dw, dh = calculate_default_transform(crs, "EPSG:4326", w, h, *bounds, resolution=0.0002)
        out = np.zeros((1, dh, dw), "uint8")
        reproject(
            clear,
            out,
            src_transform=transform,
            src_crs=crs,
            dst_transform=dst_t,
            dst_crs="EPSG:4326",
            resampling=Resampling.nearest,
        )
        masks[f"d{k}"] = str(write_raster(tmp_path / f"mask{k}.tif", out, dst_t, None, crs="EPSG:4326"))
    result = match(paths, tmp_path / "out", references=["d0"], method="global", masks=masks)
    err = gain_error(result.model)
    print(f"max gain error with mask rasters in EPSG:4326: {np.round(err, 4)}")
    assert err.max() < 0.01


@needs_shared
def test_a_pif_selection_that_leaves_too_few_pixels_names_the_image_bands_and_count(series, tmp_path):
    paths, *_ = series
    with pytest.raises(EmptyImageError) as info:
        match(
            paths[:2],
            tmp_path / "out",
            pif=PifOptions.parse(["imad"], threshold=0.999999999, min_share=0),
            min_overlap=5000,
        )
    message = str(info.value)
    print(message)
    assert message.startswith("d0: only ") and "pseudo-invariant pixels" in message and "bands 1, 2, 3, 4" in message
    assert "--pif-threshold" in message and "91776 valid" in message
    assert not (tmp_path / "out").exists()


@needs_shared
def test_pif_statistics_do_not_depend_on_the_chunking(series, tmp_path):
    paths, *_ = series
    pif = PifOptions.parse(["imad"])
    big = match(paths[:3], tmp_path / "big", pif=pif, method="global", chunk_size=1024)
    small = match(paths[:3], tmp_path / "small", pif=pif, method="global", chunk_size=96)
    used = [[p["used_pixels"], p["holdout_pixels"]] for p in big.model.quality["pairs"]]
    assert used == [[p["used_pixels"], p["holdout_pixels"]] for p in small.model.quality["pairs"]]
    np.testing.assert_allclose(big.model.global_fit.gains, small.model.global_fit.gains, rtol=1e-10)


@needs_shared
def test_spectral_cloud_masks_do_not_depend_on_the_chunking(series, tmp_path):
    paths, *_ = series
    common = dict(method="global", cloud_mask="spectral", band_names=BANDS, reflectance=(2e-5, -0.1))
    counts = [
        [
            im["valid_pixels"]
            for im in match(paths, tmp_path / f"c{size}", chunk_size=size, **common).model.quality["images"]
        ]
        for size in (1024, 50)  # 50: chunk borders cut through the clouds and their buffers
    ]
    assert counts[0] == counts[1] and counts[0][1] < counts[0][0]
