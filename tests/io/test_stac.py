"""STAC input: searches against a real STAC API (rustac serve), static catalogs, item files; band selection."""

from __future__ import annotations

import datetime as dt
import json

import pystac
import pytest

from stacrrn.errors import InputError, ParameterError
from stacrrn.io.stac import (
    EmptySearchError,
    Search,
    gdal_path,
    parse_bbox,
    parse_query,
    search_items,
    select_bands,
)
from stacrrn.services import RustacAPI


def make_item(item_id: str, day: int, lon: float, cloud: float, assets: dict | None = None) -> pystac.Item:
    geom = {
        "type": "Polygon",
        "coordinates": [[[lon, 45], [lon + 0.1, 45], [lon + 0.1, 45.1], [lon, 45.1], [lon, 45]]],
    }
    item = pystac.Item(
        item_id,
        geom,
        [lon, 45, lon + 0.1, 45.1],
        dt.datetime(2024, 6, day, 10, tzinfo=dt.UTC),
        {"eo:cloud_cover": cloud},
        collection="scenes",
    )
    default = {
        "B04": {
            "href": f"s3://b/{item_id}/B04.tif",
            "type": pystac.MediaType.COG,
            "roles": ["data"],
            "eo:bands": [{"name": "B04", "common_name": "red"}],
        },
        "B08": {
            "href": f"s3://b/{item_id}/B08.tif",
            "type": pystac.MediaType.COG,
            "roles": ["data"],
            "eo:bands": [{"name": "B08", "common_name": "nir"}],
        },
        "visual": {
            "href": f"s3://b/{item_id}/TCI.tif",
            "type": pystac.MediaType.COG,
            "roles": ["visual"],
            "eo:bands": [{"name": "r"}, {"name": "g"}, {"name": "b"}],
        },
        "rgb": {
            "href": f"s3://b/{item_id}/rgb.tif",
            "type": pystac.MediaType.COG,
            "roles": ["data"],
            "eo:bands": [{"name": "R", "common_name": "red"}, {"name": "G"}, {"name": "B"}],
        },
        "thumbnail": {"href": f"s3://b/{item_id}/t.png", "type": "image/png", "roles": ["thumbnail"]},
    }
    for key, a in (assets or default).items():
        item.add_asset(key, pystac.Asset.from_dict(a))
    return item


def collection() -> dict:
    ext = pystac.Extent(pystac.SpatialExtent([[10, 45, 11, 46]]), pystac.TemporalExtent([[None, None]]))
    d = pystac.Collection("scenes", "test scenes", ext, license="CC0-1.0").to_dict(include_self_link=False)
    d["links"] = []
    return d


ITEMS = [
    make_item("a", 1, 10.0, 5.0),
    make_item("b", 3, 10.08, 60.0),
    make_item("c", 12, 10.16, 10.0),
    make_item("far", 2, 10.8, 0.0),
]


@pytest.fixture(scope="module")
def api():
    with RustacAPI(collection(), [it.to_dict(include_self_link=False) for it in ITEMS]) as server:
        yield server


def test_api_search_by_bbox_datetime_and_limit(api):
    found = search_items(Search(stac=api.url, collections=("scenes",), bbox=(10.0, 45.0, 10.3, 45.1)))
    assert [it.id for it in found] == ["a", "b", "c"]  # sorted by date, "far" outside the bbox
    found = search_items(Search(stac=api.url, bbox=(10.0, 45.0, 10.3, 45.1), datetime="2024-06-01/2024-06-05"))
    assert [it.id for it in found] == ["a", "b"]
    assert len(search_items(Search(stac=api.url, max_items=2))) == 2
    assert [it.id for it in search_items(Search(stac=api.url, ids=("c",)))] == ["c"]


def test_empty_search_and_unreachable_api_are_input_errors(api):
    with pytest.raises(EmptySearchError, match="selected no item"):
        search_items(Search(stac=api.url, bbox=(-10, -10, -9, -9)))
    from stacrrn.services import free_port

    with pytest.raises(InputError, match="did not answer"):
        search_items(Search(stac=f"http://127.0.0.1:{free_port()}"))


def test_api_searches_survive_failed_requests_and_give_up_with_a_temporary_error(api):
    from stacrrn.errors import TransientIOError
    from stacrrn.services import FaultProxy

    want = [it.id for it in search_items(Search(stac=api.url, collections=("scenes",)))]
    with FaultProxy(api.url, failure_rate=0.3, seed=5, modes=("status", "reset")) as proxy:
        for _ in range(5):
            assert [it.id for it in search_items(Search(stac=proxy.url, collections=("scenes",)))] == want
        assert proxy.stats()["failed_total"] > 0
        proxy.failure_rate = 1.0
        with pytest.raises(TransientIOError, match="kept failing"):
            search_items(Search(stac=proxy.url, collections=("scenes",)))


def test_static_catalog_and_item_files(tmp_path):
    cat = pystac.Catalog("root", "test")
    for it in ITEMS:
        cat.add_item(it.clone())
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    found = search_items(
        Search(catalog=str(tmp_path / "catalog" / "catalog.json"), bbox=(10.0, 45.0, 10.3, 45.1), datetime="2024-06-03")
    )
    assert [it.id for it in found] == ["b"]
    fc = tmp_path / "items.json"
    fc.write_text(json.dumps({"type": "FeatureCollection", "features": [it.to_dict() for it in ITEMS[:2]]}))
    one = tmp_path / "c.json"
    one.write_text(json.dumps(ITEMS[2].to_dict()))
    assert [it.id for it in search_items(Search(item_files=(str(fc), str(one))))] == ["a", "b", "c"]
    with pytest.raises(ParameterError, match="need a STAC API"):
        search_items(Search(item_files=(str(fc),), query=("eo:cloud_cover<20",)))
    with pytest.raises(ParameterError, match="exactly one source"):
        search_items(Search())


def test_band_selection_by_key_common_name_and_index():
    sel = select_bands(ITEMS[:2], ["nir", "B04", "rgb.2"])
    assert [(b.label, b.asset, b.index) for b in sel.bands] == [
        ("nir", "B08", 1),  # common name of a single-band asset
        ("B04", "B04", 1),
        ("rgb.2", "rgb", 2),
    ]
    assert sel.assets == {"B08": [0], "B04": [1], "rgb": [2]}
    multi = select_bands(ITEMS[:1], ["rgb"])
    assert multi.labels == ["rgb.1", "rgb.2", "rgb.3"]
    default = select_bands(ITEMS[:1])  # raster data assets only: no visual, no thumbnail
    assert default.labels == ["B04", "B08", "rgb.1", "rgb.2", "rgb.3"]


def test_band_selection_errors():
    with pytest.raises(ParameterError, match="its spectral assets are B04, B08, rgb"):
        select_bands(ITEMS[:1], ["swir16"])
    with pytest.raises(ParameterError, match=r"'red' matches B04, rgb\.1 of item a: name one"):
        select_bands(ITEMS[:1], ["red"])
    with pytest.raises(ParameterError, match="has 3 band"):
        select_bands(ITEMS[:1], ["rgb.4"])
    with pytest.raises(ParameterError, match="twice"):
        select_bands(ITEMS[:1], ["R", "rgb.1"])
    other = make_item("x", 1, 10.0, 0.0, {"nir": {"href": "s3://b/x.tif", "type": pystac.MediaType.COG}})
    with pytest.raises(ParameterError, match="resolves differently"):
        select_bands([ITEMS[0], other], ["nir"])


def test_query_bbox_and_paths():
    assert parse_query(["eo:cloud_cover<20", "platform=landsat-8", "gsd>=10"]) == {
        "eo:cloud_cover": {"lt": 20},
        "platform": {"eq": "landsat-8"},
        "gsd": {"gte": 10},
    }
    with pytest.raises(ParameterError, match="comparison"):
        parse_query(["cloudy"])
    assert parse_bbox("10,45,11,46") == (10, 45, 11, 46)
    for bad in ("10,45,11", "11,45,10,46", "a,b,c,d", "10,95,11,96"):
        with pytest.raises(ParameterError, match="--bbox"):
            parse_bbox(bad)
    assert gdal_path("s3://b/k.tif") == "/vsis3/b/k.tif"
    assert gdal_path("https://h/k.tif") == "/vsicurl/https://h/k.tif"
    assert gdal_path("file:///x/k.tif") == "/x/k.tif"


class SilentServer:
    """A TCP server on loopback that accepts connections and never answers (a hung service)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[object] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()  # type: ignore[attr-defined]
        self.sock.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def failing():
    """An HTTP server on loopback that answers every request with 500."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_a_stac_api_that_never_answers_is_a_temporary_error(silent):
    from stacrrn.errors import TransientIOError

    with pytest.raises(TransientIOError, match="kept failing"):
        search_items(Search(stac=silent.url, timeout=0.2))


@pytest.mark.parametrize("server", ["silent", "failing"])
def test_a_catalog_over_http_that_hangs_or_keeps_failing_is_a_temporary_error(server, request):
    from stacrrn.errors import TransientIOError

    found = request.getfixturevalue(server)
    url = found.url if server == "silent" else found
    with pytest.raises(TransientIOError, match="kept failing"):
        search_items(Search(catalog=f"{url}/catalog.json", timeout=0.2))


def test_the_command_line_exits_75_on_a_catalog_server_that_never_answers(silent, tmp_path):
    from tests.cli.test_cli import run_cli

    proc = run_cli("run", "--catalog", f"{silent.url}/catalog.json", "--timeout", "0.2", "--out", str(tmp_path / "o"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 75, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "kept failing" in lines[0]
    assert not (tmp_path / "o").exists()


def _catalog(cat_id: str, *links: tuple[str, str]) -> dict:
    """A STAC catalog with ``(rel, href)`` links."""
    return {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": cat_id,
        "description": cat_id,
        "links": [{"rel": rel, "href": href, "type": "application/json"} for rel, href in links],
    }


def _item_dict(item_id: str, href: str) -> dict:
    d = make_item(item_id, 1, 10.0, 5.0, {"B04": {"href": href, "type": pystac.MediaType.COG}}).to_dict(
        include_self_link=False
    )
    d["links"] = []
    return d


@pytest.fixture
def web():
    from tests.io.web import Web

    with Web() as server:
        yield server


def test_a_catalog_with_a_link_cycle_is_bad_input_not_a_recursion(web, tmp_path):
    """Catalog a links child b, b links child a: over HTTP and on disk, one InputError naming the cycle."""
    web.serve("/a.json", _catalog("a", ("root", "./a.json"), ("child", "./b.json")))
    web.serve("/b.json", _catalog("b", ("root", "./a.json"), ("child", "./a.json")))
    with pytest.raises(InputError, match=r"has a cycle: http://127\.0\.0\.1:\d+/b\.json links to .*/a\.json"):
        search_items(Search(catalog=f"{web.url}/a.json"))
    (tmp_path / "a.json").write_text(json.dumps(_catalog("a", ("child", "./b.json"))))
    (tmp_path / "b.json").write_text(json.dumps(_catalog("b", ("child", "./b.json"))))  # b is its own child
    with pytest.raises(InputError, match=r"has a cycle: .*b\.json links to .*b\.json"):
        search_items(Search(catalog=str(tmp_path / "a.json")))


def test_a_catalog_reached_twice_is_read_once_and_deep_nesting_is_refused(tmp_path, monkeypatch):
    import stacrrn.io.stac

    (tmp_path / "root.json").write_text(json.dumps(_catalog("root", ("child", "./x.json"), ("child", "./y.json"))))
    for name in ("x", "y"):
        (tmp_path / f"{name}.json").write_text(json.dumps(_catalog(name, ("child", "./shared.json"))))
    (tmp_path / "shared.json").write_text(json.dumps(_catalog("shared", ("item", "./a.json"))))
    (tmp_path / "a.json").write_text(json.dumps(_item_dict("a", "./a.tif")))
    assert [it.id for it in search_items(Search(catalog=str(tmp_path / "root.json")))] == ["a"]
    monkeypatch.setattr(stacrrn.io.stac, "MAX_CATALOG_DEPTH", 2)
    with pytest.raises(InputError, match="more than 2 levels deep"):
        search_items(Search(catalog=str(tmp_path / "root.json")))


def test_a_remote_catalog_may_not_lead_to_local_files(web, tmp_path):
    local_item = tmp_path / "local.json"
    local_item.write_text(json.dumps(_item_dict("local", str(tmp_path / "a.tif"))))
    web.serve("/links-local.json", _catalog("r", ("item", local_item.as_uri())))
    with pytest.raises(InputError, match=r"links to 'file:///.*local\.json' on this machine.*--allow-local-hrefs"):
        search_items(Search(catalog=f"{web.url}/links-local.json"))
    allowed = search_items(Search(catalog=f"{web.url}/links-local.json", allow_local_hrefs=True))
    assert [it.id for it in allowed] == ["local"]
    web.serve("/assets-local.json", _catalog("r", ("item", "./items/b.json")))
    web.serve("/items/b.json", _item_dict("b", "/vsizip//etc/secrets.zip/b.tif"))
    with pytest.raises(InputError, match=r"item 'b' of .*asset 'B04' points at '/vsizip//etc/secrets\.zip/b\.tif'"):
        search_items(Search(catalog=f"{web.url}/assets-local.json"))
    web.serve("/items/b.json", _item_dict("b", "../scenes/b.tif"))  # relative: resolved on the server
    (found,) = search_items(Search(catalog=f"{web.url}/assets-local.json"))
    assert found.assets["B04"].get_absolute_href() == f"{web.url}/scenes/b.tif"


def test_a_stac_api_whose_items_point_at_local_files_is_refused(web):
    links = [
        {"rel": "self", "href": web.url + "/"},
        {"rel": "root", "href": web.url + "/"},
        {"rel": "search", "href": web.url + "/search", "type": "application/geo+json", "method": "POST"},
    ]
    conforms = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]
    web.serve("/", {**_catalog("api"), "conformsTo": conforms, "links": links})
    features = [_item_dict("a", "s3://b/a.tif"), _item_dict("b", "/etc/passwd")]
    web.serve("/search", {"type": "FeatureCollection", "features": features, "links": []})
    with pytest.raises(InputError, match=r"item 'b' of http://127\.0\.0\.1:\d+: asset 'B04' points at '/etc/passwd'"):
        search_items(Search(stac=web.url))
    assert [it.id for it in search_items(Search(stac=web.url, allow_local_hrefs=True))] == ["a", "b"]


@pytest.mark.parametrize("body", ["[]", "null", '"a string"', "42"])
def test_a_stac_api_landing_page_that_is_not_an_object_is_bad_input(web, body):
    url = web.serve("/", body)
    with pytest.raises(InputError, match="did not answer the search with STAC stacrrn can use"):
        search_items(Search(stac=url))


def test_a_signed_item_collection_url_is_not_repeated_in_the_error(web):
    secret = "se=2030-01-01&sig=SeCrEt"
    with pytest.raises(InputError) as caught:
        search_items(Search(item_files=(f"{web.url}/missing/items.json?{secret}",)))
    assert f"{web.url}/missing/items.json" in str(caught.value) and "404" in str(caught.value)
    assert "sig=" not in str(caught.value) and "SeCrEt" not in str(caught.value)


def test_relative_item_files_resolve_relative_hrefs_beside_them(tmp_path, monkeypatch):
    """``stacrrn run items.json`` from the file's folder: ``b.tif`` is that folder's, not the root's."""
    item = make_item("rel", 1, 10.0, 0.0, {"red": {"href": "b.tif", "type": pystac.MediaType.COG, "roles": ["data"]}})
    d = item.to_dict(include_self_link=False)
    (tmp_path / "fc.json").write_text(json.dumps({"type": "FeatureCollection", "features": [d]}))
    (tmp_path / "one.json").write_text(json.dumps(d))
    monkeypatch.chdir(tmp_path)
    for name in ("fc.json", "one.json"):
        (found,) = search_items(Search(item_files=(name,)))
        assert found.assets["red"].get_absolute_href() == str(tmp_path / "b.tif")
