"""What libraries print goes to the log: bad input gives exactly one ``error:`` line on stderr.

rasterio warns about PNG and JPEG files (``NotGeoreferencedWarning``), GDAL and PROJ print
``ERROR 1: PROJ: ...`` for unknown CRSs straight to file descriptor 2, and pystac-client warns
about what an API answers. These run ``stacrrn`` in a subprocess, as a user does, because
neither typer's runner nor pytest would see a C library writing to stderr (and pytest records
Python warnings itself). With ``-v`` or ``--log-json`` those messages are log records.
"""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from typer.testing import CliRunner

from stacrrn.cli.app import app
from stacrrn.samples import write_sample_mosaic
from tests.cli.test_cli import one_error_line, run_cli
from tests.io.web import Web

runner = CliRunner()

MADE_UP_WKT = (
    'PROJCS["made up",GEOGCS["x",DATUM["y",SPHEROID["z",6378137,298.257]],PRIMEM["Greenwich",0],'
    'UNIT["degree",0.0174532925199433]],PROJECTION["No_Such_Projection"],UNIT["metre",1]]'
)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> dict[str, Any]:
    """Two overlapping tiles, their items as files (asset ``image``), a PNG, a JPEG and spoiled GeoTIFFs."""
    folder = tmp_path_factory.mktemp("tiles")
    t0, t1 = write_sample_mosaic(folder, tiles=2, tile_size=96, overlap=32).paths[:2]
    result = runner.invoke(app, ["catalog", str(t0), str(t1), "--out", str(folder / "cat")])
    assert result.exit_code == 0, result.output
    items = []
    for stem in ("tile_00", "tile_01"):
        d = json.loads((folder / "cat" / stem / f"{stem}.json").read_text())
        for asset in d["assets"].values():
            asset["href"] = str((folder / "cat" / stem / asset["href"]).resolve())
        items.append(d)
    out: dict[str, Any] = {"t0": t0, "t1": t1, "items": items, "folder": folder}
    pixels = np.arange(256, dtype="uint8").reshape(1, 16, 16)
    for driver, ext in (("PNG", "png"), ("JPEG", "jpg")):
        out[ext] = folder / f"small.{ext}"
        with warnings.catch_warnings():  # writing a raster without georeferencing is what this is about
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(out[ext], "w", driver=driver, width=16, height=16, count=1, dtype="uint8") as d:
                d.write(pixels)
    with rasterio.open(t1) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(folder / "made_up.tif", "w", **(profile | {"crs": CRS.from_wkt(MADE_UP_WKT)})) as dst:
        dst.write(data)
    out["made_up"] = folder / "made_up.tif"
    # an EPSG code no registry knows, in the GeoTIFF keys (ProjectedCSTypeGeoKey 3072: 32633 -> 32799)
    raw = t1.read_bytes()
    key = struct.pack("<4H", 3072, 0, 1, 32633)
    assert raw.count(key) >= 1  # the image's keys, and its overviews'
    (folder / "unknown_epsg.tif").write_bytes(raw.replace(key, struct.pack("<4H", 3072, 0, 1, 32799)))
    out["unknown_epsg"] = folder / "unknown_epsg.tif"
    return out


def item_files(tiles: dict[str, Any], folder: Path, href: str | None = None) -> list[str]:
    """The two items as files; the second one's asset at ``href``."""
    paths = []
    for k, d in enumerate(tiles["items"]):
        d = json.loads(json.dumps(d))
        if k == 1 and href is not None:
            d["assets"]["image"]["href"] = href
        paths.append(str(folder / f"{d['id']}.json"))
        Path(paths[-1]).write_text(json.dumps(d))
    return paths


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_a_png_or_jpeg_asset_gives_one_error_line_and_no_warning(tiles, tmp_path, kind):
    proc = run_cli("run", *item_files(tiles, tmp_path, str(tiles[kind])), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, f"small.{kind}", "no CRS")
    assert not (tmp_path / "out").exists()


def test_the_warning_is_a_log_record_with_verbose_and_log_json(tiles, tmp_path):
    files = item_files(tiles, tmp_path, str(tiles["png"]))
    verbose = run_cli("-v", "run", *files, "--out", str(tmp_path / "out"), "-q")
    assert verbose.returncode == 2, verbose.stderr
    assert "NotGeoreferencedWarning" in verbose.stderr and "rasterio/__init__.py" not in verbose.stderr
    logged = run_cli("--log-json", "run", *files, "--out", str(tmp_path / "out"), "-q")
    assert logged.returncode == 2, logged.stderr
    records = [json.loads(line) for line in logged.stderr.splitlines() if line.strip()]  # every line is JSON
    (warning,) = [r for r in records if r["logger"] == "py.warnings"]
    assert warning["level"] == "warning" and warning["category"] == "NotGeoreferencedWarning"
    assert warning["message"].startswith("NotGeoreferencedWarning: Dataset has no geotransform")
    assert [r["error"] for r in records if r.get("event") == "error"] == ["MissingCRSError"]


def test_a_made_up_projection_gives_one_error_line(tiles, tmp_path):
    proc = run_cli("match", str(tiles["t0"]), str(tiles["made_up"]), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "made_up.tif", "cannot be transformed to longitude/latitude")
    assert not (tmp_path / "out").exists()


def test_an_unknown_epsg_code_gives_one_error_line(tiles, tmp_path):
    args = ["match", str(tiles["t0"]), str(tiles["t1"]), "--crs", "EPSG:999999", "--out", str(tmp_path / "o")]
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "unknown CRS 'EPSG:999999'")
    logged = run_cli("--log-json", *args)
    records = [json.loads(line) for line in logged.stderr.splitlines() if line.strip()]
    gdal = [r for r in records if r["logger"] == "gdal"]
    assert gdal and all("crs not found: EPSG:999999" in r["message"] for r in gdal), records
    assert [r["exit_code"] for r in records if r.get("event") == "error"] == [2]


def test_a_geotiff_with_an_unknown_epsg_code_gives_one_error_line_when_cataloged(tiles, tmp_path):
    proc = run_cli("catalog", str(tiles["t0"]), str(tiles["unknown_epsg"]), "--out", str(tmp_path / "cat"))
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "unknown_epsg.tif", "cannot be transformed to longitude/latitude")
    assert not (tmp_path / "cat").exists()


@pytest.fixture
def junk_api() -> Iterator[str]:
    """A STAC API advertising item search by GET only, whose search answers junk features."""
    with Web() as web:
        links = [
            {"rel": "self", "href": web.url + "/"},
            {"rel": "root", "href": web.url + "/"},
            {"rel": "search", "href": web.url + "/search", "type": "application/geo+json", "method": "GET"},
        ]
        conforms = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]
        landing = {"type": "Catalog", "id": "api", "description": "junk", "stac_version": "1.0.0"}
        web.serve("/", landing | {"conformsTo": conforms, "links": links})
        features = [{"type": "Feature", "id": "junk"}, {"foo": 1}, 5]
        web.serve("/search", {"type": "FeatureCollection", "features": features, "links": []})
        yield web.url + "/"


def test_pystac_client_warnings_about_junk_features_stay_off_stderr(junk_api, tmp_path):
    proc = run_cli("search", "--stac", junk_api)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "did not answer the search", "junk")
    logged = run_cli("--log-json", "search", "--stac", junk_api)
    records = [json.loads(line) for line in logged.stderr.splitlines() if line.strip()]
    assert any(r["logger"] == "py.warnings" and r["category"] == "PystacClientWarning" for r in records), records


def test_library_output_is_restored_after_a_command(tiles, tmp_path, capfd):
    """In-process: the command's warning routing and GDAL handler do not outlive it."""
    before = warnings.showwarning
    args = ["match", str(tiles["t0"]), str(tiles["t1"]), "--crs", "EPSG:999999", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert warnings.showwarning is before
    capfd.readouterr()
    with pytest.raises(Exception, match="EPSG"):
        CRS.from_user_input("EPSG:999999")
    assert "ERROR 1: PROJ" in capfd.readouterr().err  # GDAL's own handler again outside a command
