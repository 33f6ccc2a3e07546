"""Acquisition dates of local rasters: file-name patterns, GDAL metadata, .IMD and _MTL.txt sidecars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio

from stacrrn.errors import ParameterError
from stacrrn.io.acquisition import (
    acquisition_date,
    acquisition_dates,
    date_from_name,
    format_datetime,
    name_regex,
    parse_timestamp,
)
from tests.conftest import SHARED, write_raster

HAWAII = sorted((SHARED / "landsat_hawaii_timeseries").glob("Landsat_*.tif"))
needs_hawaii = pytest.mark.skipif(not HAWAII, reason="../shared/data/landsat_hawaii_timeseries is absent")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def raster(path, tags=None, imagery=None):
    """A tiny georeferenced raster with GDAL metadata ``tags`` (default domain) and ``imagery`` (IMAGERY)."""
    write_raster(path, np.ones((1, 8, 8), np.uint16), rasterio.Affine(30, 0, 200000, 0, -30, 2200000), 0, "EPSG:32605")
    with rasterio.open(path, "r+") as dst:
        if tags:
            dst.update_tags(**tags)
        if imagery:
            dst.update_tags(ns="IMAGERY", **imagery)
    return path


@needs_hawaii
def test_the_hawaii_names_give_their_dates():
    found = acquisition_dates(HAWAII, "%Y%m%d")
    assert [a.when for a in found] == [
        utc(2021, 3, 26),
        utc(2022, 3, 13),
        utc(2023, 5, 3),
        utc(2024, 3, 2),
        utc(2025, 4, 22),
    ]
    assert {a.source for a in found} == {"file name"}
    assert acquisition_dates(HAWAII) == [None] * 5  # no date in their metadata, no sidecar


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("Landsat_20210326.tif", "%Y%m%d", utc(2021, 3, 26)),
        # a Landsat product id: acquisition date first, processing date second
        ("LC08_L1TP_063046_20210326_20210402_02_T1_B4.TIF", "%Y%m%d", utc(2021, 3, 26)),
        # runs of eight digits that are no date are passed over
        ("scene_12345678_20210326.tif", "%Y%m%d", utc(2021, 3, 26)),
        ("S2B_MSIL2A_20210527T110619_N0300.tif", "%Y%m%dT%H%M%S", utc(2021, 5, 27, 11, 6, 19)),
        ("img-2021-03-26.tif", "%Y-%m-%d", utc(2021, 3, 26)),
        ("doy_2021085.tif", "%Y%j", utc(2021, 3, 26)),
        ("x210326.tif", "%y%m%d", utc(2021, 3, 26)),
        ("a_20210326_100%.tif", "%Y%m%d_100%%", utc(2021, 3, 26)),  # %% is a literal %
    ],
)
def test_dates_from_names(name, pattern, expected):
    assert date_from_name(name, pattern) == expected


def test_pattern_directives_become_digit_runs_of_their_widths():
    assert name_regex("%Y%m%d").pattern == r"\d{4}\d{2}\d{2}"
    assert name_regex("%Y-T%H.%f").pattern == r"\d{4}\-T\d{2}\.\d{1,6}"
    for pattern, words in [
        ("%m%d", "has no year"),
        ("%Y%b", "'%b' is not one of %Y %y %m %d %j %H %M %S %f %%"),
        ("%Y%", "'%' is not one of"),
        ("%%Y", "has no year"),
    ]:
        with pytest.raises(ParameterError, match=words):
            date_from_name("x_20210326.tif", pattern)


def test_a_name_without_the_date_names_the_file_and_the_pattern():
    with pytest.raises(ParameterError) as err:
        date_from_name("/data/scene_B4.tif", "%Y%m%d")
    assert str(err.value) == (
        "scene_B4.tif does not match --datetime-from-name '%Y%m%d': no date like '20210326' in 'scene_B4'"
    )
    with pytest.raises(ParameterError, match="no date like '2021-03-26'"):
        date_from_name("Landsat_20210326.tif", "%Y-%m-%d")
    with pytest.raises(ParameterError, match="20211326"):  # digits of the right width, but month 13
        date_from_name("Landsat_20211326.tif", "%Y%m%d")


def test_a_bad_pattern_is_refused_before_any_file_is_read(tmp_path):
    with pytest.raises(ParameterError, match="has no year"):
        acquisition_dates([tmp_path / "missing.tif"], "%d")


@pytest.mark.parametrize(
    ("tags", "imagery", "expected", "source"),
    [
        (
            {},
            {"ACQUISITIONDATETIME": "2021-03-26 20:51:37"},
            utc(2021, 3, 26, 20, 51, 37),
            "IMAGERY ACQUISITIONDATETIME",
        ),
        ({"ACQUISITIONDATETIME": "2021-03-26T20:51:37Z"}, {}, utc(2021, 3, 26, 20, 51, 37), "ACQUISITIONDATETIME"),
        ({"SENSING_TIME": "2021-05-27T11:06:21.024Z"}, {}, utc(2021, 5, 27, 11, 6, 21, 24000), "SENSING_TIME"),
        (
            {"DATE_ACQUIRED": "2021-03-26", "SCENE_CENTER_TIME": '"20:51:37.1234560Z"'},
            {},
            utc(2021, 3, 26, 20, 51, 37, 123456),
            "DATE_ACQUIRED",
        ),
        ({"DATE_ACQUIRED": "2021-03-26"}, {}, utc(2021, 3, 26), "DATE_ACQUIRED"),
        ({"SENSING_TIME": "2021-03-26T12:00:00+02:00"}, {}, utc(2021, 3, 26, 10), "SENSING_TIME"),
        # a value that is no date is passed over for the next key
        ({"ACQUISITIONDATETIME": "unknown", "SENSING_TIME": "2021-03-26"}, {}, utc(2021, 3, 26), "SENSING_TIME"),
    ],
)
def test_dates_from_gdal_metadata(tmp_path, tags, imagery, expected, source):
    found = acquisition_date(raster(tmp_path / "scene.tif", tags, imagery))
    assert found is not None and found.when == expected and found.source == f"metadata {source}"


def test_the_tiff_creation_time_is_not_an_acquisition_date(tmp_path):
    path = raster(tmp_path / "scene.tif", {"TIFFTAG_DATETIME": "2025:10:23 12:00:00"})
    with rasterio.open(path) as src:
        assert src.tags()["TIFFTAG_DATETIME"] == "2025:10:23 12:00:00"
    assert acquisition_date(path) is None


IMD = """version = "28.3";
generationTime = 2019-02-01T10:00:00.000000Z;
BEGIN_GROUP = IMAGE_1
\tsatId = "WV03";
\tfirstLineTime = 2018-11-04T19:45:12.123456Z;
\tearliestAcqTime = 2018-11-04T19:45:11.000000Z;
END_GROUP = IMAGE_1
END;
"""

MTL = """GROUP = LANDSAT_METADATA_FILE
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    DATE_ACQUIRED = 2021-03-26
    SCENE_CENTER_TIME = "20:51:37.4170300Z"
  END_GROUP = IMAGE_ATTRIBUTES
END_GROUP = LANDSAT_METADATA_FILE
END
"""


@pytest.fixture
def gdal_lists_no_folder(monkeypatch):
    """As for a remote raster, or with the user's ``GDAL_DISABLE_READDIR_ON_OPEN``: GDAL reads no sidecar itself."""
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")


def test_dates_from_a_maxar_imd_beside_the_raster(tmp_path, gdal_lists_no_folder):
    path = raster(tmp_path / "18NOV04194512-M2AS-0123_P001.TIF")
    (tmp_path / "18NOV04194512-M2AS-0123_P001.IMD").write_text(IMD)
    found = acquisition_date(path)
    assert found is not None and found.when == utc(2018, 11, 4, 19, 45, 12, 123456)  # not generationTime
    assert found.source == "18NOV04194512-M2AS-0123_P001.IMD firstLineTime"
    # where GDAL lists the folder, its DigitalGlobe reader fills the IMAGERY domain from the same file
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):
        by_gdal = acquisition_date(path)
    assert by_gdal is not None and by_gdal.when == utc(2018, 11, 4, 19, 45, 12)  # to the second
    assert by_gdal.source == "metadata IMAGERY ACQUISITIONDATETIME"


def test_dates_from_the_landsat_mtl_of_a_band_file(tmp_path, gdal_lists_no_folder):
    product = "LC08_L2SP_063046_20210326_20210402_02_T1"
    (tmp_path / f"{product}_MTL.txt").write_text(MTL)
    found = acquisition_date(raster(tmp_path / f"{product}_SR_B4.TIF"))
    assert found is not None and found.when == utc(2021, 3, 26, 20, 51, 37, 417030)
    assert found.source == f"{product}_MTL.txt DATE_ACQUIRED"
    other = acquisition_date(raster(tmp_path / "LC09_L2SP_063046_20220313_20220315_02_T1_SR_B4.TIF"))
    assert other is None  # another product's MTL is not its own


def test_the_metadata_wins_over_a_sidecar_and_a_pattern_over_both(tmp_path, gdal_lists_no_folder):
    path = raster(tmp_path / "scene_20200101.tif", {"ACQUISITIONDATETIME": "2021-03-26"})
    (tmp_path / "scene_20200101.IMD").write_text(IMD)
    found = acquisition_date(path)
    assert found.when == utc(2021, 3, 26) and found.source == "metadata ACQUISITIONDATETIME"
    named = acquisition_date(path, "%Y%m%d")
    assert named.when == utc(2020, 1, 1) and named.source == "file name"


def test_timestamps_and_their_rfc3339_form():
    assert parse_timestamp("2021-03-26") == utc(2021, 3, 26)
    assert parse_timestamp(" '2021-03-26 20:51:37' ") == utc(2021, 3, 26, 20, 51, 37)
    assert parse_timestamp("2021:03:26 20:51:37") is None  # the TIFF form is not parsed at all
    assert parse_timestamp("yesterday") is None
    assert format_datetime(utc(2021, 3, 26)) == "2021-03-26T00:00:00Z"
    assert format_datetime(dt.datetime(2021, 3, 26, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2021-03-26T10:00:00Z"
    )
    assert format_datetime(dt.datetime(2021, 3, 26)) == "2021-03-26T00:00:00Z"  # naive: UTC
