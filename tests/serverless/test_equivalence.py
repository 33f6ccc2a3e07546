"""The same job, three ways: one process, a 2-worker Dask LocalCluster, and the serverless stages.

Real Sentinel-2 tiles with known gains/offsets are served by a moto S3 server and a rustac
STAC API on loopback; every engine must give the same model (bit for bit: chunk moments are
summed in chunk order everywhere) and the same output pixels, and recover the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import s3fs

from stacrrn.io.stac import Search, gdal_path, search_items
from stacrrn.pipeline.execution.parallel import connect
from stacrrn.pipeline.run import run
from stacrrn.serverless import handlers
from stacrrn.services import RustacAPI
from tests.conftest import needs_shared
from tests.pipeline.test_run import BANDS, publish_scenes, s2_scenes  # noqa: F401 (fixture)

CHUNK = 128
TILES = 3
PARAMS = {"assets": BANDS, "references": ["t00"], "method": "global+local", "chunk_size": CHUNK}


def pixels(items: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for item in items:
        for band in BANDS:
            with rasterio.open(gdal_path(item["assets"][band]["href"])) as src:
                out[f"{item['id']}/{band}"] = src.read()
    return out


def serverless_run(items: list[dict], out: str) -> tuple[dict, list[dict]]:
    """Drive the four handlers as the Step Functions state machine does (the last one as a process)."""
    payload = {
        "type": "FeatureCollection",
        "features": items,
        "process": {"upload_options": {"path_template": out}, "tasks": {"stacrrn": PARAMS | {"tiles": TILES}}},
    }
    for tile in range(TILES):
        result = handlers.statistics(payload | {"tile": tile, "tiles": TILES})
        assert result["statistics"].startswith(out)
    solved = handlers.solve(payload)
    applied = [handlers.apply(solved | {"item": f["id"]})["features"][0] for f in items]
    done = subprocess.run(
        [sys.executable, "-m", "stacrrn.serverless", "collection", "--event", "-"],
        input=json.dumps(solved),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["items"] == len(items)
    model = json.loads(s3fs.S3FileSystem().cat(solved["model"][5:]))
    return model, applied


@needs_shared
def test_single_process_local_cluster_and_serverless_agree(s3, bucket, s2_scenes):  # noqa: F811
    paths, _truths, gains, offsets = s2_scenes
    coll, published = publish_scenes(paths, bucket, "s2")
    with RustacAPI(coll, published) as api:
        search = Search(stac=api.url, collections=("s2",))
        found = [it.to_dict() for it in search_items(search)]
        single = run(search, f"s3://{bucket}/single", workers=1, **PARAMS)
        with connect("local", 2) as cluster:
            clustered = run(search, f"s3://{bucket}/cluster", workers=cluster, **PARAMS)
    model, applied = serverless_run(found, f"s3://{bucket}/serverless")

    g, o = single.model.global_fit.gains, single.model.global_fit.offsets
    assert np.abs(g * gains - 1).max() < 1e-4 and np.abs(g * offsets + o).max() < 0.05  # the truth
    reference = json.loads(single.model.to_json())
    for other in (json.loads(clustered.model.to_json()), model):
        assert other["global"] == reference["global"] and other["local"] == reference["local"]
    assert clustered.model.digest() == single.model.digest()
    # the collection stage adds what the items measured to the model, as a single process does
    assert model["quality"]["fidelity"] == reference["quality"]["fidelity"] != {}
    assert [row["datetime"] for row in model["quality"]["images"]] == [
        row["datetime"] for row in reference["quality"]["images"]
    ]
    assert {i["properties"]["rrn:model_digest"] for i in applied} == {single.model.digest()}
    expected = pixels(single.items)
    for items in (clustered.items, applied):
        got = pixels(items)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[k], expected[k]) for k in expected)
    fs = s3fs.S3FileSystem()
    assert not any(fs.exists(f"{bucket}/{run}/.stacrrn-tmp") for run in ("single", "cluster", "serverless"))
    collection = json.loads(fs.cat(f"{bucket}/serverless/collection.json"))
    assert sorted(ln["href"].split("/")[-1] for ln in collection["links"] if ln["rel"] == "item") == [
        f"t0{k}.json" for k in range(4)
    ]


@pytest.mark.parametrize("stage", sorted(handlers.STAGES))
def test_handlers_import_as_lambda_entry_points(stage):
    import importlib

    module, _, name = f"stacrrn.serverless.handlers.{stage}".rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
