"""The full STAC API path: stac-fastapi-pgstac on Debian's PostgreSQL (query, filter, transactions)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio

from stacrrn.io.stac import Search, search_items
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.samples import landscape
from stacrrn.services import PgstacAPI, pgstac_unavailable_reason
from tests.conftest import validate_stac, write_raster

pytestmark = pytest.mark.skipif(pgstac_unavailable_reason() is not None, reason=str(pgstac_unavailable_reason()))


@pytest.fixture(scope="module")
def pgstac():
    with PgstacAPI() as api:
        yield api


def test_query_filter_run_and_publish_through_pgstac(pgstac, s3, bucket, tmp_path):
    base = landscape(180, 420, seed=9)
    gains = [1.0, 1.15, 0.9, 1.2]
    clouds = [5.0, 10.0, 20.0, 95.0]  # the last scene is too cloudy: the query drops it
    paths = []
    for k, g in enumerate(gains):
        img = np.clip(np.rint(base[:, :, k * 80 : k * 80 + 180] * g), 1, 65535).astype("uint16")
        t = rasterio.Affine(10.0, 0, 300000.0 + 800.0 * k, 0, -10.0, 4000000.0)
        paths.append(write_raster(tmp_path / f"p{k}.tif", img, t, nodata=0))
    when = [dt.datetime(2024, 5, 1 + k, tzinfo=dt.UTC) for k in range(4)]
    props = [{"eo:cloud_cover": c, "platform": "sample-sat"} for c in clouds]
    coll, items = catalog_rasters(
        paths,
        f"s3://{bucket}/in",
        "pg-scenes",
        band_names=["blue", "green", "red", "nir08"],
        datetimes=when,
        properties=props,
    )
    pgstac.load(coll, items)

    search = Search(stac=pgstac.url, collections=("pg-scenes",), query=("eo:cloud_cover<50",))
    assert [it.id for it in search_items(search)] == ["p0", "p1", "p2"]
    text_filter = "platform = 'sample-sat' AND \"eo:cloud_cover\" > 15"  # CQL2 text, sent by GET
    assert [it.id for it in search_items(Search(stac=pgstac.url, filter=text_filter))] == ["p2", "p3"]
    json_filter = '{"op": "<=", "args": [{"property": "eo:cloud_cover"}, 10]}'
    assert [it.id for it in search_items(Search(stac=pgstac.url, filter=json_filter))] == ["p0", "p1"]

    result = run(
        search,
        f"s3://{bucket}/out",
        references=["p0"],
        method="global",
        publish=pgstac.url,
        collection_id="pg-scenes-rrn",
    )
    assert result.published == f"{pgstac.url}/collections/pg-scenes-rrn"
    assert np.allclose(result.model.global_fit.gains[:, 0] * gains[:3], 1, atol=2e-3)
    # a second search, against the API the outputs were published to, finds them with their metadata
    found = search_items(Search(stac=pgstac.url, collections=("pg-scenes-rrn",), query=("rrn:is_reference=false",)))
    assert [it.id for it in found] == ["p1", "p2"]
    for it in found:
        d = it.to_dict(transform_hrefs=False)
        assert validate_stac({**d, "links": [ln for ln in d["links"] if ln["rel"] != "root"]}) == []
        assert it.properties["rrn:model_digest"] == result.model.digest()
        with rasterio.open(it.assets["image"].href.replace("s3://", "/vsis3/")) as src:
            assert src.count == 4 and src.dtypes[0] == "uint16"  # one multi-band asset in, one out
    # publishing the same run again replaces the items instead of duplicating them
    events = []
    run(
        search,
        f"s3://{bucket}/out",
        references=["p0"],
        method="global",
        publish=pgstac.url,
        collection_id="pg-scenes-rrn",
        progress=lambda *event: events.append(event),
    )
    assert len(search_items(Search(stac=pgstac.url, collections=("pg-scenes-rrn",)))) == 3
    # progress counts items for apply and publish, chunks for the overlap pass
    assert events[-1] == ("publish", 3, 3) and ("apply", 3, 3) in events
    assert [e[1] for e in events if e[0] == "publish"] == [0, 1, 2, 3]
    overlaps = [e for e in events if e[0] == "overlaps"]
    assert overlaps and overlaps[-1][1] == overlaps[-1][2] > 0
