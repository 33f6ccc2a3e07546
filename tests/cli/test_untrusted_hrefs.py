"""Hrefs from untrusted sources: remote items may not open local files, and messages never show URL queries.

Items are served from a loopback ``http.server`` (:class:`tests.io.web.Web`), which records
every request, so a test can tell that an asset was never fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rasterio
from typer.testing import CliRunner

from stacrrn.cli.app import app
from stacrrn.samples import write_sample_mosaic
from tests.cli.test_cli import one_error_line, run_cli
from tests.io.web import Web

runner = CliRunner()

SECRET = "sv=2024&se=2030-01-01&sig=SeCrEtSiGnAtUrE"
"""A query string like a signed URL's; never to appear in an error line or log."""


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> list[dict[str, Any]]:
    """Two overlapping tiles as items with one asset ``image`` each, at absolute local paths."""
    folder = tmp_path_factory.mktemp("tiles")
    tiles = write_sample_mosaic(folder, tiles=2, tile_size=96, overlap=32).paths[:2]
    result = runner.invoke(app, ["catalog", *map(str, tiles), "--out", str(folder / "cat")])
    assert result.exit_code == 0, result.output
    out = []
    for stem in ("tile_00", "tile_01"):
        d = json.loads((folder / "cat" / stem / f"{stem}.json").read_text())
        d["links"] = []
        for asset in d["assets"].values():
            asset["href"] = str((folder / "cat" / stem / asset["href"]).resolve())
        out.append(d)
    return out


@pytest.fixture
def web() -> Iterator[Web]:
    with Web() as server:
        yield server


def collection_of(items: list[dict[str, Any]], href: Any) -> dict[str, Any]:
    """The items as an ItemCollection, each asset's href ``href(local path)``."""
    features = json.loads(json.dumps(items))
    for d in features:
        for asset in d["assets"].values():
            asset["href"] = href(asset["href"])
    return {"type": "FeatureCollection", "features": features}


def test_remote_items_pointing_at_etc_passwd_are_refused_before_anything_is_opened(items, web, tmp_path, monkeypatch):
    url = web.serve("/passwd/items.json", collection_of(items, lambda _: "/etc/passwd"))
    opened: list[str] = []
    real_open = rasterio.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    result = runner.invoke(app, ["run", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, "'/etc/passwd'", "--allow-local-hrefs")
    assert opened == []
    assert web.requested == ["/passwd/items.json"]
    assert not (tmp_path / "out").exists()


def test_remote_items_pointing_at_a_vsicurl_path_are_refused_and_never_fetched(items, web, tmp_path):
    web.serve("/assets/tile.tif", b"II*\x00")
    url = web.serve("/vsi/items.json", collection_of(items, lambda _: f"/vsicurl/{web.url}/assets/tile.tif"))
    result = runner.invoke(app, ["search", url])
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr, "/vsicurl/http://", "--allow-local-hrefs")
    assert web.requested == ["/vsi/items.json"]


def test_remote_file_urls_need_allow_local_hrefs_and_then_run(items, web, tmp_path):
    url = web.serve("/file/items.json", collection_of(items, lambda path: Path(path).as_uri()))
    refused = runner.invoke(app, ["run", url, "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 2, refused.output
    one_error_line(refused.stderr, "file://", "--allow-local-hrefs")
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "out"
    allowed = runner.invoke(app, ["run", url, "--allow-local-hrefs", "--method", "global", "--out", str(out), "-q"])
    assert allowed.exit_code == 0, allowed.output
    collection = json.loads((out / "collection.json").read_text())
    assert sorted(link["href"].split("/")[-1] for link in collection["links"] if link["rel"] == "item") == [
        "tile_00.json",
        "tile_01.json",
    ]


def test_local_item_files_may_point_at_local_paths_and_vsi_paths(items, tmp_path):
    """The refusal is for remote sources only: the same hrefs in a local file are searched as given."""
    local = tmp_path / "items.json"
    vsi = collection_of(items, lambda path: f"/vsicurl/http://127.0.0.1:9/{Path(path).parent.name}.tif")
    local.write_text(json.dumps(vsi))
    result = runner.invoke(app, ["search", str(local), "--json"])
    assert result.exit_code == 0, result.output
    hrefs = [f["assets"]["image"]["href"] for f in json.loads(result.stdout)["features"]]
    assert hrefs == ["/vsicurl/http://127.0.0.1:9/tile_00.tif", "/vsicurl/http://127.0.0.1:9/tile_01.tif"]


def test_a_signed_asset_url_is_never_repeated_in_the_error_line_or_the_log(items, web, tmp_path):
    """The second item's asset is a missing signed URL (404): the error line and every log line drop its query."""
    features = collection_of(items, lambda path: path)["features"]
    features[1]["assets"]["image"]["href"] = f"{web.url}/signed/tile_01.tif?{SECRET}"
    files = []
    for d in features:
        files.append(str(tmp_path / f"{d['id']}.json"))
        Path(files[-1]).write_text(json.dumps(d))
    proc = run_cli("run", *files, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, f"{web.url}/signed/tile_01.tif")
    assert "sig=" not in proc.stderr and "SeCrEt" not in proc.stderr
    assert any(path.startswith("/signed/tile_01.tif?") for path in web.requested)  # the query did reach the server
    for verbosity in ("-vv", "--log-json"):
        logged = run_cli(verbosity, "run", *files, "--out", str(tmp_path / "out"))
        assert logged.returncode == 2, logged.stderr
        assert f"{web.url}/signed/tile_01.tif" in logged.stderr
        assert "sig=" not in logged.stderr and "SeCrEt" not in logged.stderr, logged.stderr
