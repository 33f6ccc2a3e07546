"""`stacrrn search`, `run` and `catalog` as a user runs them, against loopback S3 and STAC API servers."""

from __future__ import annotations

import json

import pytest
import s3fs

import stacrrn.pipeline.run
from stacrrn.cli.app import app
from stacrrn.core.settings import LocalParams
from stacrrn.samples import write_sample_mosaic
from stacrrn.services import RustacAPI, free_port
from tests.cli.test_cli import assert_user_error, run_cli, runner
from tests.conftest import BAHAMAS


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    return write_sample_mosaic(tmp_path_factory.mktemp("tiles"), tiles=2, tile_size=128, overlap=32)


@pytest.fixture
def catalogued(s3, bucket, tiles):
    proc = run_cli(
        "catalog",
        *map(str, tiles.paths),
        "--out",
        f"s3://{bucket}/in",
        "--collection-id",
        "tiles",
        "--bands",
        "blue,green,red,nir08",
        "--split-bands",
        "--datetime",
        "2024-06-01T10:00:00Z",
    )
    assert proc.returncode == 0, proc.stderr
    fs = s3fs.S3FileSystem()
    coll = json.loads(fs.cat(f"{bucket}/in/collection.json"))
    items = [json.loads(fs.cat(f"{bucket}/in/{p.stem}/{p.stem}.json")) for p in tiles.paths]
    return coll, items


def test_search_previews_items_and_run_publishes(catalogued, bucket):
    coll, items = catalogued
    assert {"blue", "green", "red", "nir08"} <= set(items[0]["assets"])
    with RustacAPI(coll, items) as api:
        proc = run_cli("search", "--stac", api.url, "-c", "tiles", "--bbox", "14,39,16,42")
        assert proc.returncode == 0, proc.stderr
        for it in items:
            assert it["id"] in proc.stdout
        assert "footprint overlap" in proc.stdout
        proc = run_cli("search", "--stac", api.url, "--max-items", "2", "--json")
        assert len(json.loads(proc.stdout)["features"]) == 2
        out = f"s3://{bucket}/out"
        args = ["run", "--stac", api.url, "-c", "tiles", "--assets", "red,nir08", "--out", out, "-r", "tile_00"]
        proc = run_cli(*args, "--method", "global")
        assert proc.returncode == 0, proc.stderr
        assert "wrote 4 items" in proc.stderr and "nir08" in proc.stdout
        proc = run_cli(*args, "--method", "global")
        assert "4 kept from a previous run" in proc.stderr
    fs = s3fs.S3FileSystem()
    item = json.loads(fs.cat(f"{bucket}/out/tile_01/tile_01.json"))
    assert set(item["assets"]) == {"red", "nir08", "model", "blue", "green"}  # blue, green carried uncorrected
    assert item["properties"]["rrn:assets"] == ["red", "nir08"]
    assert item["assets"]["blue"]["href"].startswith(f"s3://{bucket}/in/tile_01/")  # the input's, unchanged
    assert item["properties"]["rrn:bands"] == ["red", "nir08"]


def test_run_format_zarr_writes_one_datacube_item_and_refuses_a_mosaic_of_it(catalogued, bucket):
    import xarray as xr

    coll, items = catalogued
    with RustacAPI(coll, items) as api:
        args = ["run", "--stac", api.url, "-c", "tiles", "--assets", "red,nir08", "-r", "tile_00", "--format", "zarr"]
        refused = run_cli(*args, "--out", f"s3://{bucket}/refused", "--mosaic")
        assert_user_error(refused, "--mosaic", "--format cog")
        proc = run_cli(*args, "--out", f"s3://{bucket}/cube", "--method", "global")
        assert proc.returncode == 0, proc.stderr
    assert "wrote a Zarr datacube and its item" in proc.stderr, proc.stderr
    assert "Unclosed" not in proc.stderr
    fs = s3fs.S3FileSystem()
    assert not fs.exists(f"{bucket}/refused")  # refused before anything was written
    item = json.loads(fs.cat(f"{bucket}/cube/tiles-rrn-cube/tiles-rrn-cube.json"))
    cube = xr.open_zarr(item["assets"]["zarr"]["href"])
    assert set(cube.data_vars) == {"red", "nir08", "rrn_gain", "rrn_offset"}
    assert cube["id"].values.tolist() == [it["id"] for it in items] and cube.sizes["time"] == 4


@pytest.mark.skipif(not BAHAMAS, reason="../shared/data/landsat7_bahamas_quadrants is not present")
def test_run_passes_local_extent_and_decay_to_run(tmp_path, monkeypatch):
    calls = []
    real = stacrrn.pipeline.run.run

    def spy(*args, **kwargs):
        calls.append(args[2].model.local_params)  # run(search, out, options, ...)
        return real(*args, **kwargs)

    monkeypatch.setattr(stacrrn.pipeline.run, "run", spy)  # run_command imports it when called
    cat, out = tmp_path / "cat", tmp_path / "out"
    made = runner.invoke(app, ["catalog", *map(str, BAHAMAS), "--out", str(cat), "--datetime", "2024-06-01T10:00:00Z"])
    assert made.exit_code == 0, made.output
    args = ["run", "--catalog", str(cat / "collection.json"), "--out", str(out), "--blocks", "8", "-q"]
    result = runner.invoke(app, [*args, "--local-extent", "image", "--local-decay", "3"])
    assert result.exit_code == 0, result.output
    assert calls == [LocalParams(extent="image", decay=3.0)]
    assert (out / "collection.json").exists()


def broken_items(items: list[dict], bucket: str, tmp_path) -> list[str]:
    """Two item files, the second with an asset whose object does not exist in the bucket."""
    paths = []
    for it in items[:2]:
        path = tmp_path / f"{it['id']}.json"
        path.write_text(json.dumps(it))
        paths.append(str(path))
    broken = json.loads(json.dumps(items[1]))
    broken["assets"]["red"]["href"] = f"s3://{bucket}/in/missing.tif"
    (tmp_path / f"{items[1]['id']}.json").write_text(json.dumps(broken))
    return paths


def test_stac_bad_input_exits_2_with_one_line(catalogued, bucket, tmp_path):
    coll, items = catalogued
    with RustacAPI(coll, items) as api:
        cases = [
            (["search", "--stac", api.url, "--bbox", "1,2,3"], ["--bbox"]),
            (["search", "--stac", api.url, "--bbox", "-10,-10,-9,-9"], ["selected no item"]),
            (["search", "--stac", api.url, "--datetime", "yesterday"], ["--datetime", "RFC 3339"]),
            (["search"], ["exactly one source"]),
            (["search", "--stac", f"http://127.0.0.1:{free_port()}"], ["did not answer"]),
            (["run", "--stac", api.url, "--assets", "swir16", "--out", str(tmp_path / "o")], ["swir16", "blue"]),
            (["run", "--stac", api.url, "--out", f"s3://no-such-bucket-{bucket}/x"], ["cannot write"]),
            (["run", "--stac", api.url, "--mode", "stack", "--out", str(tmp_path / "o")], ["--mode"]),
            (["run", "--stac", api.url, "--id", "tile_00", "--out", str(tmp_path / "o")], ["at least two"]),
            (["run", "--stac", api.url, "-r", "nope", "--out", str(tmp_path / "o")], ["nope"]),
            (["search", "--catalog", str(tmp_path / "missing.json")], ["cannot read"]),
            (["search", "--stac", str(tmp_path)], ["did not answer"]),
            (["run", "--stac", api.url, "--cloud-mask", "maybe", "--out", str(tmp_path / "o")], ["--cloud-mask"]),
            (["run", "--stac", api.url, "--cloud-mask", "qa", "--out", str(tmp_path / "o")], ["no quality asset"]),
            (["run", "--stac", api.url, "--cloud-mask", "spectral", "--out", str(tmp_path / "o")], ["reflectance"]),
            (
                [
                    "run",
                    "--stac",
                    api.url,
                    "--assets",
                    "nir08",
                    "--cloud-mask",
                    "spectral",
                    "--out",
                    str(tmp_path / "o"),
                ],
                ["eo:common_name 'blue'"],
            ),
            (["run", "--catalog", f"s3://{bucket}/in/collection.json", "--out", f"s3://{bucket}/in"], ["overwrite"]),
            (
                ["run", *broken_items(items, bucket, tmp_path), "--out", str(tmp_path / "o")],
                ["tile_01", "red", "missing"],
            ),
        ]
        for args, words in cases:
            assert_user_error(run_cli(*args), *words)
    assert not (tmp_path / "o").exists()
