"""``stacrrn match --mode timeseries``: local files ordered by their acquisition dates and paired like a STAC series.

The dates are one real Landsat crop (a clear Hawai'i date) times known per-date gains, written
under file names (or metadata) that carry made-up acquisition dates and given out of order:
the job must put them in date order, pair each date with its neighbour only, and still
recover every gain through the chain of pairs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from stacrrn.cli.app import app
from stacrrn.core.model import RRNModel
from stacrrn.errors import ParameterError
from stacrrn.pipeline.match import match
from tests.pipeline.test_many_dates import BANDS, base_crop, expected_gain_error, needs_landsat

pytestmark = needs_landsat

DATES = ["20210326", "20220313", "20230503", "20240302", "20250422"]
SHUFFLED = [3, 0, 4, 2, 1]
"""The order the files are given in (indices into :data:`DATES`)."""


def injected_gains() -> np.ndarray:
    """Gains ``(dates, bands)`` in [0.6, 2.0] in date order; the first date keeps 1 (the reference)."""
    gains = np.random.default_rng(2017).uniform(0.6, 2.0, (len(DATES), len(BANDS)))
    gains[0] = 1.0
    return gains


def write_date(path: Path, base: np.ndarray, gain: np.ndarray, tags: dict[str, str] | None = None) -> Path:
    """``round(gain * base)`` as uint16 on the crop's grid (nodata 0 where the base is), with GDAL ``tags``."""
    _, transform, crs = base_crop()
    values = np.where(base > 0, np.maximum(np.rint(base * gain[:, None, None]), 1), 0).astype(np.uint16)
    profile = {"driver": "GTiff", "width": base.shape[2], "height": base.shape[1], "count": len(BANDS)}
    with rasterio.open(path, "w", dtype="uint16", crs=crs, transform=transform, nodata=0, **profile) as dst:
        dst.write(values)
        dst.update_tags(**(tags or {}))
    return path


def chain(names: list[str]) -> list[list[str]]:
    return [list(pair) for pair in itertools.pairwise(names)]


def normalized(pairs: list[list[str]]) -> list[list[str]]:
    """Pairs as sorted name pairs, each once, sorted."""
    return [list(p) for p in sorted({tuple(sorted(p)) for p in pairs})]


def pairs_of(model: RRNModel) -> list[list[str]]:
    return normalized([p["images"] for p in model.quality["pairs"]])


def test_neighbours_pair_the_files_in_date_order_and_recover_the_injected_gains(tmp_path):
    base, _, _ = base_crop()
    gains = injected_gains()
    assert base.max() * gains.max() < 65535  # no date saturates
    paths = [write_date(tmp_path / f"site_{d}.tif", base, gains[k]) for k, d in enumerate(DATES)]
    names = [p.stem for p in paths]
    out = tmp_path / "out"
    args = ["match", *(str(paths[k]) for k in SHUFFLED), "--out", str(out), "--method", "global", "-q"]
    args += ["--mode", "timeseries", "--neighbours", "1", "--datetime-from-name", "%Y%m%d", "-r", names[0]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    model = RRNModel.from_json((out / "stacrrn-model.json").read_text())
    assert [im.name for im in model.images] == names  # date order, not the order given
    assert pairs_of(model) == normalized(chain(names))  # each date with the next one only
    rows = {row["name"]: row["datetime"] for row in model.quality["images"]}
    assert rows == {n: f"{d[:4]}-{d[4:6]}-{d[6:]}T00:00:00Z" for n, d in zip(names, DATES, strict=True)}
    # corrected = a * value, so a_k is proportional to 1 / g_k; the reference keeps a_0 = 1.
    # Each link of the chain is off by at most one gain's error of tests/pipeline/test_many_dates.py
    # (two dates' spread errors from rounding to whole DN); four links add at most four of them.
    a = model.global_fit.gains
    bound = (len(DATES) - 1) * expected_gain_error(base, gains)
    assert bound < 1e-3, bound  # the crop is spread enough for the bound to mean something
    np.testing.assert_allclose(a[0], 1.0, rtol=1e-9)
    np.testing.assert_allclose(a[0] / a, gains, rtol=bound, atol=0)


def test_dates_from_metadata_order_the_files_and_a_star_adds_the_reference_pairs(tmp_path):
    base, _, _ = base_crop()
    gains = injected_gains()
    stamps = [f"{d[:4]}-{d[4:6]}-{d[6:]} 10:30:00" for d in DATES]
    letters = "edcba"  # names sort against time
    paths = [
        write_date(tmp_path / f"scene_{letters[k]}.tif", base, gains[k], {"ACQUISITIONDATETIME": stamps[k]})
        for k in range(len(DATES))
    ]
    names = [p.stem for p in paths]
    given = [paths[k] for k in SHUFFLED]
    result = match(
        given, tmp_path / "out", method="global", mode="timeseries", neighbours=1, star=True, references=[names[2]]
    )
    assert [im.name for im in result.model.images] == names
    star = [[n, names[2]] for n in names if n != names[2]]
    assert pairs_of(result.model) == normalized(chain(names) + star)
    assert result.warnings == []


def test_repeated_dates_are_one_warning_and_mosaics_do_not_care(tmp_path):
    base, _, _ = base_crop()
    gains = injected_gains()
    names = ["a_20210326", "b_20210326", "c_20210326", "d_20220313"]
    paths = [write_date(tmp_path / f"{n}.tif", base, gains[k]) for k, n in enumerate(names)]
    common = {"method": "global", "datetime_from_name": "%Y%m%d"}
    series = match(paths, tmp_path / "series", mode="timeseries", **common)
    (line,) = series.warnings
    assert line.startswith("time series with repeated dates: 3 inputs share 2021-03-26T00:00:00Z; ")
    assert "use --mode mosaic" in line
    mosaic = match(paths, tmp_path / "mosaic", **common)
    assert mosaic.warnings == []
    assert {row["datetime"] for row in mosaic.model.quality["images"]} == {
        "2021-03-26T00:00:00Z",
        "2022-03-13T00:00:00Z",
    }


def test_without_dates_the_order_given_is_kept_and_said_where_it_matters(tmp_path):
    base, _, _ = base_crop()
    gains = injected_gains()
    paths = [write_date(tmp_path / f"d{k}.tif", base, gains[k]) for k in range(3)]
    given = [paths[2], paths[0], paths[1]]
    result = match(given, tmp_path / "n1", method="global", mode="timeseries", neighbours=1)
    assert [im.name for im in result.model.images] == ["d2", "d0", "d1"]
    assert pairs_of(result.model) == [["d0", "d1"], ["d0", "d2"]]
    (line,) = result.warnings
    assert "no acquisition date for any input" in line and "in the order given" in line
    every_pair = match(given, tmp_path / "all", method="global", mode="timeseries")
    assert every_pair.warnings == [] and len(every_pair.model.quality["pairs"]) == 3

    dated = write_date(tmp_path / "d3.tif", base, gains[3], {"ACQUISITIONDATETIME": "2021-03-26"})
    partial = match([dated, *given], tmp_path / "partial", method="global", mode="timeseries")
    assert [im.name for im in partial.model.images] == ["d3", "d2", "d0", "d1"]
    (line,) = partial.warnings
    assert line.startswith("no acquisition date for 3 of 4 inputs (d2, d0, d1): the time series keeps the order given")


def test_bad_time_series_options_are_refused_before_any_pixel_is_read(tmp_path):
    base, _, _ = base_crop()
    paths = [write_date(tmp_path / f"site_{d}.tif", base, np.ones(len(BANDS))) for d in DATES[:2]]
    for values, words in [
        ({"mode": "timeseries", "star": True}, "--star pairs each date with the reference dates"),
        ({"star": True, "references": ["site_20210326"]}, "use --mode timeseries"),
        ({"mode": "timeseries", "neighbours": 0}, "--neighbours must be at least 1"),
        ({"mode": "timeseries", "datetime_from_name": "%Y-%m-%d"}, "site_20210326.tif does not match"),
        ({"assets": ["1"]}, "assets apply to STAC runs only"),
    ]:
        with pytest.raises(ParameterError, match=words):
            match(paths, tmp_path / "out", **values)
    assert not (tmp_path / "out").exists()


def test_the_model_json_keeps_the_dates_for_the_report(tmp_path):
    base, _, _ = base_crop()
    paths = [write_date(tmp_path / f"site_{d}.tif", base, np.ones(len(BANDS))) for d in DATES[:2]]
    result = match(paths, tmp_path / "out", method="global", mode="timeseries", datetime_from_name="%Y%m%d")
    rows = json.loads(result.model_path.read_text())["quality"]["images"]
    assert [row["datetime"] for row in rows] == ["2021-03-26T00:00:00Z", "2022-03-13T00:00:00Z"]
    assert dt.datetime.fromisoformat(rows[0]["datetime"]).tzinfo is not None
