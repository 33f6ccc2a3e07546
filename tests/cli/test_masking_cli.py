"""`stacrrn match` with masks and PIFs, `stacrrn clouds`, `stacrrn pif`: outputs and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from tests.cli.test_cli import assert_user_error, run_cli
from tests.conftest import SHARED, needs_shared
from tests.pipeline.test_hawaii import BOXES, in_boxes

FOLDER = SHARED / "landsat_hawaii_timeseries"
NAMES = "coastal,blue,green,red,nir08,swir16,swir22"
SPECTRAL = ["--band-names", NAMES, "--reflectance-scale", "2e-5", "--reflectance-offset", "-0.1"]
CLOUDY = "Landsat_20220313"


def dates(*stems: str) -> list[str]:
    return [str(FOLDER / f"Landsat_{s}.tif") for s in stems]


@needs_shared
def test_match_with_cloud_mask_and_pifs_prints_the_per_date_table(tmp_path):
    out = tmp_path / "out"
    paths = dates("20210326", "20220313", "20240302")
    proc = run_cli(
        "match",
        *paths,
        "-o",
        str(out),
        "-r",
        "Landsat_20240302",
        "--method",
        "global",
        "--cloud-mask",
        "spectral",
        *SPECTRAL,
        "--pif",
        "imad",
        "--estimator",
        "orthogonal",
    )
    assert proc.returncode == 0, proc.stderr
    assert "held-out RMSE before -> after" in proc.stdout and CLOUDY in proc.stdout
    model = json.loads((out / "stacrrn-model.json").read_text())
    assert model["quality"]["settings"] == {"estimator": "orthogonal", "pif": model["quality"]["settings"]["pif"]}
    assert model["quality"]["settings"]["pif"]["methods"] == ["imad"]
    assert {row["image"] for row in model["quality"]["holdout"]} == {p.rsplit("/", 1)[1][:-4] for p in paths}


@needs_shared
def test_clouds_writes_masks_that_match_the_hand_marked_boxes(tmp_path):
    out = tmp_path / "masks"
    proc = run_cli("clouds", *dates("20220313", "20240302"), "-o", str(out), "--cloud-mask", "spectral", *SPECTRAL)
    assert proc.returncode == 0, proc.stderr
    assert "clear-sky masks" in proc.stdout
    with rasterio.open(out / f"{CLOUDY}-clear.tif") as src:
        mask = src.read(1)
        assert src.nodata == 255 and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert set(np.unique(mask)) <= {0, 1, 255}
    assert (mask[in_boxes(CLOUDY, "cloud", mask.shape)] == 0).all()
    assert (mask[in_boxes(CLOUDY, "clear", mask.shape)] == 1).all()
    with rasterio.open(out / "Landsat_20240302-clear.tif") as src:
        assert (src.read(1)[in_boxes("Landsat_20240302", "clear", mask.shape)] == 1).all()
    assert BOXES  # the boxes come from tests/data


@needs_shared
def test_pif_writes_a_mask_per_pair_that_avoids_clouds_and_shadows(tmp_path):
    out = tmp_path / "pifs"
    proc = run_cli("pif", *dates("20220313", "20240302"), "-o", str(out), "--pif", "imad")
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out / f"pif-{CLOUDY}__Landsat_20240302.tif") as src:
        pif = src.read(1)
    share = (pif == 1).sum() / (pif != 255).sum()
    print(f"PIF share of the overlap: {share:.3f}")
    assert 0.09 < share < 0.5
    for kind in ("cloud", "shadow"):
        assert (pif[in_boxes(CLOUDY, kind, pif.shape)] == 0).all()


BAD = [
    (["--pif", "bogus"], ["'bogus'", "imad"]),
    (["--pif", "none", "--pif", "imad"], ["--pif none"]),
    (["--pif", "imad", "--pif-threshold", "1.5"], ["--pif-threshold"]),
    (["--pif", "imad", "--holdout", "1"], ["--holdout"]),
    (["--estimator", "ols"], ["--estimator", "orthogonal"]),
    (["--mask", "nonsense"], ["NAME=PATH"]),
    (["--mask", "Landsat_19990101=x.tif"], ["not one of the inputs"]),
    (["--mask", f"{CLOUDY}={FOLDER / 'missing.tif'}"], ["missing.tif"]),
    (["--mask", f"{CLOUDY}=x.tif:qa"], ["unknown kind", "qa_pixel"]),
    (["--pif", "ndvi"], ["--pif ndvi", "red"]),
    (["--pif", "ndvi", "--band-names", NAMES], ["reflectance", "--reflectance-scale"]),
    (["--cloud-mask", "spectral", "--band-names", "blue,red"], ["--band-names lists 2", "7 band"]),
    (["--cloud-mask", "qa"], ["--cloud-mask", "none", "spectral"]),
    (
        ["--pif", "imad", "--pif-threshold", "0.99999999", "--pif-min-share", "0", "--min-overlap", "5000"],
        ["pseudo-invariant pixels", "bands 1, 2, 3, 4, 5, 6, 7", "--pif-threshold"],
    ),
]


@needs_shared
@pytest.mark.parametrize(("args", "words"), BAD, ids=[" ".join(a)[:40] for a, _ in BAD])
def test_bad_mask_and_pif_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, words):
    out = tmp_path / "out"
    proc = run_cli("match", *dates("20220313", "20240302"), "-o", str(out), *args)
    assert_user_error(proc, *words)
    assert not out.exists()


@needs_shared
def test_vector_without_polygons_and_clouds_with_nothing_to_mask(tmp_path):
    points = tmp_path / "points.geojson"
    points.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-156, 19.6]}}
                ],
            }
        )
    )
    out = tmp_path / "out"
    assert_user_error(
        run_cli("match", *dates("20220313", "20240302"), "-o", str(out), "--pif", str(points)), "holds no polygon"
    )
    assert_user_error(run_cli("clouds", *dates("20220313"), "-o", str(out)), "nothing to mask")
    assert_user_error(
        run_cli("clouds", *dates("20220313"), "-o", str(out), "--bands", "red", "--cloud-mask", "spectral"),
        "band numbers",
    )
    assert not out.exists()


@needs_shared
def test_sensor_preset_gives_the_same_masks_as_its_published_scale_and_offset(tmp_path):
    # the Hawaii dates are Landsat Collection 2 Level-1: TOA reflectance = 2e-5 x DN - 0.1
    explicit, preset = tmp_path / "explicit", tmp_path / "preset"
    common = [*dates("20220313", "20240302"), "--cloud-mask", "spectral", "--band-names", NAMES]
    assert run_cli("clouds", *common, "-o", str(explicit), *SPECTRAL[2:]).returncode == 0
    proc = run_cli("clouds", *common, "-o", str(preset), "--sensor", "landsat-c2-l1")
    assert proc.returncode == 0, proc.stderr
    for name in (f"{CLOUDY}-clear.tif", "Landsat_20240302-clear.tif"):
        with rasterio.open(explicit / name) as a, rasterio.open(preset / name) as b:
            assert np.array_equal(a.read(1), b.read(1))
    with rasterio.open(preset / f"{CLOUDY}-clear.tif") as src:
        assert (src.read(1)[in_boxes(CLOUDY, "cloud", (src.height, src.width))] == 0).all()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sensor", "landsat-9"], "unknown --sensor 'landsat-9'; choose one of landsat-c2-l1, landsat-c2-l2"),
        (["--sensor", "landsat-c2-l2", "--reflectance-scale", "2e-5"], "--sensor sets the reflectance scale"),
    ],
)
def test_bad_sensor_preset_is_one_line_exit_2(tmp_path, args, words):
    assert_user_error(run_cli("clouds", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), *args), words)
