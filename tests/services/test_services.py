"""The loopback services are real: each one is started and used over HTTP, no mocks."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from stacrrn.errors import InputError, StacrrnError
from stacrrn.services import (
    LoopbackS3,
    PgstacAPI,
    RustacAPI,
    ServiceError,
    free_port,
    pgstac_unavailable_reason,
)
from stacrrn.services.common import http_json

EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"


def make_collection(collection_id: str = "scenes") -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": collection_id,
        "description": "test scenes",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z"]]},
        },
        "links": [],
    }


def make_item(
    item_id: str,
    bbox: tuple[float, float, float, float],
    datetime: str,
    cloud_cover: float,
    collection_id: str = "scenes",
) -> dict[str, Any]:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [EO],
        "id": item_id,
        "collection": collection_id,
        "bbox": list(bbox),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": datetime, "eo:cloud_cover": cloud_cover},
        "assets": {
            "data": {
                "href": f"s3://bucket/{item_id}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        },
        "links": [],
    }


def three_items() -> list[dict[str, Any]]:
    return [
        make_item("a", (0.0, 0.0, 1.0, 1.0), "2024-01-05T10:00:00Z", 5.0),
        make_item("b", (0.0, 0.0, 1.0, 1.0), "2024-06-05T10:00:00Z", 50.0),
        make_item("c", (10.0, 10.0, 11.0, 11.0), "2024-01-20T10:00:00Z", 15.0),
    ]


def ids(search: Any) -> list[str]:
    return sorted(item.id for item in search.items())


def test_service_error_is_not_an_input_error() -> None:
    assert issubclass(ServiceError, StacrrnError)
    assert issubclass(ServiceError, RuntimeError)
    assert not issubclass(ServiceError, InputError)
    port = free_port()
    assert 0 < port < 65536


def test_s3_gdal_and_s3fs_roundtrip(tmp_path: Path) -> None:
    import s3fs

    data = np.arange(3 * 256 * 256, dtype="uint16").reshape(3, 256, 256)
    local = tmp_path / "scene.tif"
    profile = {
        "driver": "GTiff",
        "width": 256,
        "height": 256,
        "count": 3,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 6000000.0),
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
    }
    with rasterio.open(local, "w", **profile) as dst:
        dst.write(data)

    before = os.environ.get("AWS_ENDPOINT_URL")
    bucket = f"stacrrn-{uuid.uuid4().hex[:12]}"
    with LoopbackS3() as s3:
        assert s3.endpoint.startswith("http://127.0.0.1:")
        assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint
        assert os.environ["AWS_S3_ENDPOINT"] == f"127.0.0.1:{s3.port}"
        s3.create_bucket(bucket)
        s3.create_bucket(bucket)  # idempotent

        fs = s3fs.S3FileSystem()  # endpoint from AWS_ENDPOINT_URL
        fs.put(str(local), f"{bucket}/dir/scene.tif")
        assert fs.size(f"{bucket}/dir/scene.tif") == local.stat().st_size

        window = Window(col_off=70, row_off=130, width=50, height=40)
        with rasterio.open(f"/vsis3/{bucket}/dir/scene.tif") as src:
            assert src.crs.to_epsg() == 32633
            assert src.count == 3
            got = src.read(window=window)
        np.testing.assert_array_equal(got, data[:, 130:170, 70:120])
    assert os.environ.get("AWS_ENDPOINT_URL") == before
    assert not s3.running


def test_rustac_search_by_bbox_and_datetime() -> None:
    from pystac_client import Client

    with RustacAPI(make_collection(), three_items()) as api:
        assert api.url.startswith("http://127.0.0.1:")
        client = Client.open(api.url)
        assert ids(client.search(collections=["scenes"])) == ["a", "b", "c"]
        assert ids(client.search(bbox=[0.2, 0.2, 0.8, 0.8])) == ["a", "b"]
        assert ids(client.search(datetime="2024-01-01/2024-01-31")) == ["a", "c"]
        assert ids(client.search(bbox=[0.2, 0.2, 0.8, 0.8], datetime="2024-01-01/2024-01-31")) == ["a"]
        process_log = api.log_path
        assert process_log is not None and process_log.exists()
    assert process_log is not None and not process_log.exists()  # temporary workdir removed


def test_rustac_serves_several_collections(tmp_path: Path) -> None:
    from pystac_client import Client

    items = [*three_items(), make_item("d", (0.0, 0.0, 1.0, 1.0), "2024-02-01T00:00:00Z", 1.0, "other")]
    with RustacAPI([make_collection(), make_collection("other")], items, workdir=tmp_path) as api:
        client = Client.open(api.url)
        assert sorted(c.id for c in client.get_collections()) == ["other", "scenes"]
        assert ids(client.search(collections=["other"])) == ["d"]
    assert (tmp_path / "rustac.log").exists()  # a given workdir is kept


def test_pgstac_query_filter_and_transactions() -> None:
    reason = pgstac_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from pystac_client import Client

    with PgstacAPI() as api:
        assert api.url.startswith("http://127.0.0.1:")
        api.load(make_collection(), three_items())
        api.load(make_collection(), three_items())  # upsert: loading twice is harmless
        client = Client.open(api.url)

        assert ids(client.search(collections=["scenes"])) == ["a", "b", "c"]
        assert ids(client.search(collections=["scenes"], query={"eo:cloud_cover": {"lt": 20}})) == ["a", "c"]
        cql2 = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}
        assert ids(client.search(collections=["scenes"], filter=cql2, filter_lang="cql2-json")) == ["a"]
        cql2_text = "eo:cloud_cover > 10 AND eo:cloud_cover < 60"
        text_search = client.search(collections=["scenes"], filter=cql2_text, filter_lang="cql2-text", method="GET")
        assert ids(text_search) == ["b", "c"]
        assert ids(client.search(bbox=[0.2, 0.2, 0.8, 0.8], datetime="2024-01-01/2024-01-31")) == ["a"]

        new = make_item("d", (0.0, 0.0, 1.0, 1.0), "2024-03-01T00:00:00Z", 2.0)
        status, answer = http_json("POST", f"{api.url}/collections/scenes/items", new)
        assert status in (200, 201), answer
        assert ids(client.search(collections=["scenes"], query={"eo:cloud_cover": {"lt": 20}})) == ["a", "c", "d"]
        status, got = http_json("GET", f"{api.url}/collections/scenes/items/d")
        assert status == 200 and got["properties"]["eo:cloud_cover"] == 2.0

        bad = {**make_item("e", (0, 0, 1, 1), "2024-01-01T00:00:00Z", 1.0), "geometry": None}
        with pytest.raises(ServiceError, match=r"rejected|cannot store"):
            api.load(make_collection(), [bad])
        workdir = api.workdir
        assert workdir is not None
    assert not workdir.exists()
