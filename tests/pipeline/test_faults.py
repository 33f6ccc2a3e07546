"""A run through a loopback proxy that fails 10% of the S3 requests produces the clean run's outputs, byte for byte.

The proxy (:class:`stacrrn.services.FaultProxy`) sits between every client of the run and
the moto S3 server: GDAL's ``/vsis3/`` reads of the input COGs, and s3fs/botocore writes of
the outputs. It answers a seeded 10% of the requests with ``503 SlowDown``, resets the
connection, or cuts a download in half. GDAL and botocore retry what they can; stacrrn
retries whole reads and publications (:mod:`stacrrn.io.retry`) for the rest.
"""

from __future__ import annotations

import uuid

import pystac
import pytest
import s3fs

from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import run
from stacrrn.samples import write_sample_mosaic
from stacrrn.services import FaultProxy
from tests.pipeline.run_comparison import assert_same_outputs, assert_visible_items_whole, objects


@pytest.fixture
def scenes(s3, tmp_path):
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=192, overlap=48, gradient=0.2).paths
    _, items = catalog_rasters(tiles, f"s3://{bucket}/in", "tiles", band_names=["blue", "green", "red", "nir"])
    return bucket, [pystac.Item.from_dict(d) for d in items]


def test_ten_percent_failed_requests_change_no_output_byte(s3, scenes, monkeypatch):
    bucket, items = scenes
    direct = s3fs.S3FileSystem(skip_instance_cache=True)
    clean = run(items, f"s3://{bucket}/clean", workers=2)
    with FaultProxy(
        s3.env()["AWS_ENDPOINT_URL"], failure_rate=0.0, seed=11, modes=("status", "reset", "truncate")
    ) as proxy:
        for key, value in proxy.env().items():
            monkeypatch.setenv(key, value)
        proxy.failure_rate = 0.1
        faulty = run(items, f"s3://{bucket}/faulty", workers=2)
        stats = proxy.stats()
    monkeypatch.undo()
    assert stats["requests"] > 100 and all(n > 0 for n in stats["failed"].values()), stats
    assert faulty.model.digest() == clean.model.digest()
    assert assert_visible_items_whole(direct, f"{bucket}/faulty") == 4
    assert_same_outputs(
        objects(direct, f"{bucket}/faulty"), f"{bucket}/faulty", objects(direct, f"{bucket}/clean"), f"{bucket}/clean"
    )


def test_a_catalog_on_s3_that_keeps_failing_is_a_temporary_error(s3, scenes, monkeypatch):
    """Every S3 request answered 503 (after botocore's and stacrrn's retries): exit 75, not 'bad input'."""
    from stacrrn.errors import TransientIOError
    from stacrrn.io.stac import Search, search_items

    bucket, _ = scenes
    catalog = f"s3://{bucket}/in/collection.json"
    assert len(search_items(Search(catalog=catalog))) == 4
    with FaultProxy(s3.env()["AWS_ENDPOINT_URL"], failure_rate=1.0, seed=3, modes=("status",)) as proxy:
        for key, value in proxy.env().items():
            monkeypatch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()  # the next read connects through the proxy
        with pytest.raises(TransientIOError, match="kept failing"):
            search_items(Search(catalog=catalog))
        assert proxy.stats()["failed"]["status"] > 0
    s3fs.S3FileSystem.clear_instance_cache()
