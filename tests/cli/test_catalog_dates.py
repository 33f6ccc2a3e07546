"""Acquisition dates on the command line: `catalog --datetime-from-name`, `match --mode timeseries`.

The issue: `stacrrn catalog Landsat_*.tif` stamped five dates of one place with the current
time, and a time series of the catalog then took them for one date without a word.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from stacrrn.cli.app import app
from stacrrn.core.model import RRNModel
from tests.cli.test_cli import one_error_line, run_cli
from tests.conftest import SHARED, write_raster

HAWAII = sorted((SHARED / "landsat_hawaii_timeseries").glob("Landsat_*.tif"))
needs_hawaii = pytest.mark.skipif(not HAWAII, reason="../shared/data/landsat_hawaii_timeseries is absent")
DAYS = ["2021-03-26", "2022-03-13", "2023-05-03", "2024-03-02", "2025-04-22"]

runner = CliRunner()


def item_datetimes(folder) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["properties"]["datetime"] for p in folder.glob("*/*.json")}


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@needs_hawaii
def test_catalog_dates_items_from_their_names_and_a_time_series_run_orders_them(tmp_path):
    cat = tmp_path / "cat"
    result = runner.invoke(
        app, ["catalog", *map(str, reversed(HAWAII)), "--out", str(cat), "--datetime-from-name", "%Y%m%d"]
    )
    assert result.exit_code == 0, result.output
    assert warnings_of(result.stderr) == []
    assert item_datetimes(cat) == {p.stem: f"{day}T00:00:00Z" for p, day in zip(HAWAII, DAYS, strict=True)}

    out = tmp_path / "out"
    args = ["run", "--catalog", str(cat / "collection.json"), "--out", str(out), "--mode", "timeseries"]
    result = runner.invoke(app, [*args, "--neighbours", "1", "--method", "global", "-r", HAWAII[0].stem, "-q"])
    assert result.exit_code == 0, result.output
    (model_path,) = out.glob("stacrrn-model-*.json")
    model = RRNModel.from_json(model_path.read_text())
    names = [p.stem for p in HAWAII]
    assert [im.name for im in model.images] == names
    assert sorted(sorted(p["images"]) for p in model.quality["pairs"]) == [list(p) for p in itertools.pairwise(names)]


@needs_hawaii
def test_catalog_without_dates_warns_that_every_item_got_the_same_datetime(tmp_path):
    result = runner.invoke(app, ["catalog", *map(str, HAWAII[:2]), "--out", str(tmp_path / "cat")])
    assert result.exit_code == 0, result.output
    (line,) = warnings_of(result.stderr)
    assert line.startswith("warning: every item got the same datetime, now (")
    assert "--datetime-from-name PATTERN" in line and "--datetime " in line
    assert len(set(item_datetimes(tmp_path / "cat").values())) == 1
    # --datetime: one datetime for every item, as asked: nothing to warn about
    result = runner.invoke(
        app, ["catalog", *map(str, HAWAII[:2]), "--out", str(tmp_path / "one"), "--datetime", "2021-03-26T20:51:00Z"]
    )
    assert result.exit_code == 0 and warnings_of(result.stderr) == []
    assert set(item_datetimes(tmp_path / "one").values()) == {"2021-03-26T20:51:00Z"}


def test_catalog_reads_dates_from_metadata_and_landsat_mtl_files(tmp_path):
    def scene(name, **tags):
        path = write_raster(
            tmp_path / name, np.ones((1, 16, 16), np.uint16), rasterio.Affine(30, 0, 200000, 0, -30, 2200000), 0
        )
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
        return path

    product = "LC08_L2SP_063046_20210326_20210402_02_T1"
    (tmp_path / f"{product}_MTL.txt").write_text('DATE_ACQUIRED = 2021-03-26\nSCENE_CENTER_TIME = "20:51:37.41Z"\n')
    paths = [scene(f"{product}_SR_B4.TIF"), scene("tagged.tif", ACQUISITIONDATETIME="2022-03-13 20:45:00")]
    result = runner.invoke(app, ["catalog", *map(str, paths), "--out", str(tmp_path / "cat")])
    assert result.exit_code == 0, result.output
    assert warnings_of(result.stderr) == []
    assert item_datetimes(tmp_path / "cat") == {
        f"{product}_SR_B4": "2021-03-26T20:51:37.410000Z",
        "tagged": "2022-03-13T20:45:00Z",
    }
    untagged = scene("untagged.tif", TIFFTAG_DATETIME="2025:10:23 12:00:00")  # when the file was written
    result = runner.invoke(app, ["catalog", *map(str, [*paths, untagged]), "--out", str(tmp_path / "more")])
    (line,) = warnings_of(result.stderr)
    assert line.startswith("warning: 1 of 3 items have no acquisition date and got now (") and "untagged.tif" in line


@needs_hawaii
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--datetime-from-name", "%Y-%m-%d"], ["Landsat_20210326.tif does not match --datetime-from-name '%Y-%m-%d'"]),
        (["--datetime-from-name", "%d%m"], ["has no year"]),
        (["--datetime-from-name", "%Y%m%d", "--datetime", "2021-03-26T00:00:00Z"], ["give only one of them"]),
    ],
)
def test_catalog_date_errors_are_one_line_and_write_nothing(tmp_path, args, words):
    proc = run_cli("catalog", *map(str, HAWAII[:2]), "--out", str(tmp_path / "cat"), *args)
    assert proc.returncode == 2
    one_error_line(proc.stderr, *words)
    assert not (tmp_path / "cat").exists()


@needs_hawaii
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--mode", "timeseries", "--datetime-from-name", "%Y_%m"], ["does not match --datetime-from-name '%Y_%m'"]),
        (["--mode", "timeseries", "--star"], ["--star pairs each date with the reference dates", "--reference"]),
        (["--mode", "timeseries", "--neighbours", "0"], ["--neighbours must be at least 1"]),
        (["--mode", "series"], ["unknown --mode 'series'; choose one of mosaic, timeseries"]),
    ],
)
def test_match_time_series_errors_are_one_line(tmp_path, args, words):
    proc = run_cli("match", *map(str, HAWAII[:2]), "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2
    one_error_line(proc.stderr, *words)
    assert not (tmp_path / "out").exists()


def test_match_help_offers_the_time_series_options():
    result = runner.invoke(app, ["match", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("--mode [mosaic|timeseries]", "--neighbours N", "--star / --no-star", "[default: mosaic]"):
        assert words in text, words
    assert "--datetime-from-name PATTERN" in text and "%Y%m%d finds 20210326 in Landsat_20210326.tif" in text
    result = runner.invoke(app, ["catalog", "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert "--datetime-from-name PATTERN" in " ".join(result.output.split())
