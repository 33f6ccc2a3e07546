"""The pass-1 cache of both jobs: an ``.npz`` archive that gives the very same model, recomputed when unusable.

``match`` keeps it in its output folder, ``run`` in its storage (here a real moto S3 server on
loopback). A damaged archive, an older JSON cache, or one of another plan is never an error:
the statistics are computed again and the archive written anew.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pystac
import pytest
import s3fs

from stacrrn.io.statistics_file import FORMAT
from stacrrn.pipeline.match import match
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.passes.statistics import STATISTICS_FILE
from stacrrn.pipeline.run import run
from stacrrn.samples import write_sample_mosaic

PARAMS = {"references": ["tile_00"], "method": "global+local"}


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    return write_sample_mosaic(tmp_path_factory.mktemp("scenes"), tiles=2, tile_size=96, overlap=32)


def model_of(result) -> dict:
    d = result.model.to_dict()
    return {k: v for k, v in d.items() if k != "quality"} | {"overlaps": d["quality"].get("overlaps")}


def tags(data: bytes) -> tuple[str, str]:
    with np.load(io.BytesIO(data)) as npz:
        return str(npz["meta.format"]), str(npz["meta.fingerprint"])


def test_match_reuses_its_archive_and_recomputes_a_damaged_or_foreign_one(mosaic, tmp_path):
    out = tmp_path / "out"
    first = match(mosaic.paths, out, **PARAMS)
    cache = out / STATISTICS_FILE
    assert STATISTICS_FILE == "stacrrn-statistics.npz" and not first.statistics_reused
    assert tags(cache.read_bytes())[0] == FORMAT
    written = cache.read_bytes()

    again = match(mosaic.paths, out, **PARAMS)
    assert again.statistics_reused and model_of(again) == model_of(first)
    assert again.model.digest() == first.model.digest()

    cache.write_bytes(written[: len(written) // 2])  # a torn copy
    damaged = match(mosaic.paths, out, **PARAMS)
    assert not damaged.statistics_reused and damaged.model.digest() == first.model.digest()
    assert cache.read_bytes() == written  # computed again, bit for bit, and stored again

    cache.unlink()
    (out / "stacrrn-statistics.json").write_text(json.dumps({"fingerprint": tags(written)[1], "statistics": {}}))
    old = match(mosaic.paths, out, **PARAMS)  # a cache of an older stacrrn: ignored
    assert not old.statistics_reused and cache.read_bytes() == written

    other = match(mosaic.paths, out, **PARAMS, n_blocks=4)  # another plan: another fingerprint
    assert not other.statistics_reused and tags(cache.read_bytes())[1] != tags(written)[1]


def test_run_keeps_its_archive_on_s3_and_recomputes_a_damaged_one(s3, bucket, mosaic, tmp_path):
    _, found = catalog_rasters(mosaic.paths, str(tmp_path / "catalog"), "tiles")
    items = [pystac.Item.from_dict(d) for d in found]
    out = f"s3://{bucket}/out"
    key = f"{bucket}/out/{STATISTICS_FILE}"
    fs = s3fs.S3FileSystem()

    first = run(items, out, **PARAMS)
    assert not first.statistics_reused and tags(fs.cat(key))[0] == FORMAT
    written = fs.cat(key)
    assert not fs.exists(f"{bucket}/out/stacrrn-statistics.json")

    again = run(items, out, **PARAMS)
    assert again.statistics_reused and model_of(again) == model_of(first)

    fs.pipe(key, b"PK\x03\x04" + written[4:1000])  # damaged on the server
    damaged = run(items, out, **PARAMS)
    assert not damaged.statistics_reused and damaged.model.digest() == first.model.digest()
    assert fs.cat(key) == written

    fs.rm(key)
    fs.pipe(f"{bucket}/out/stacrrn-statistics.json", json.dumps({"fingerprint": tags(written)[1]}).encode())
    old = run(items, out, **PARAMS)
    assert not old.statistics_reused and fs.cat(key) == written
