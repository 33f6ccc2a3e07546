"""Serverless stages on bad events: exit code 2 and one line saying what to fix, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stacrrn.core.settings import LocalParams
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.samples import write_sample_mosaic
from stacrrn.serverless.payload import Payload


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("items")
    mosaic = write_sample_mosaic(tmp / "scenes", tiles=2, tile_size=96, overlap=32)
    _, found = catalog_rasters(mosaic.paths, str(tmp / "catalog"), "tiles")
    return found


def stage(name: str, event: object, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stacrrn.serverless", name, "--event", "-", *args],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=120,
    )


def payload(items, out, **params):
    return {
        "type": "FeatureCollection",
        "features": items,
        "process": {"upload_options": {"path_template": str(out)}, "tasks": {"stacrrn": params}},
    }


BAD = [
    ("statistics", lambda items, out: {"type": "Feature"}, [], "FeatureCollection"),
    ("statistics", lambda items, out: payload([], out), ["--tile", "0"], "FeatureCollection"),
    ("statistics", lambda items, out: payload([{"id": 1}], out), ["--tile", "0"], "not a STAC item"),
    ("statistics", lambda items, out: payload(items, out, colour="red"), ["--tile", "0"], "unknown run parameter"),
    ("statistics", lambda items, out: payload(items, out, method="magic"), ["--tile", "0"], "method"),
    *[
        ("statistics", lambda items, out, local=local: payload(items, out, local_params=local), ["--tile", "0"], words)
        for local, words in [
            ({"extent": "nope"}, "unknown --local-extent 'nope'; choose one of overlaps, image"),
            ({"decay": 0}, "--local-decay must be a finite number of blocks >= 1, got 0"),
            ({"decay": True}, "'decay' must be a number, got true"),
            ({"decay": 10**400}, "'decay' must be a number"),
            ({"membrane": "x"}, "'membrane' must be a number"),
            ({"iterations": 2.5}, "'iterations' must be a whole number"),
            ({"cross_validate": "no"}, "'cross_validate' must be true or false"),
            ({"span": 3}, "unknown field(s) 'span'"),
        ]
    ],
    ("statistics", lambda items, out: payload(items, out, format="zarr"), ["--tile", "0"], "format must be cog"),
    ("statistics", lambda items, out: payload(items, out), [], "'tile'"),
    ("statistics", lambda items, out: payload(items, out, tiles=2), ["--tile", "5"], "tile 5 is not one of 2"),
    ("statistics", lambda items, out: payload(items, out, tiles=0), ["--tile", "0"], "tiles must be"),
    ("solve", lambda items, out: payload(items, out, tiles=2), [], "no statistics for tile 0 of 2"),
    ("apply", lambda items, out: payload(items, out), ["--item", "tile_00"], "'model'"),
    ("apply", lambda items, out: payload(items, out), ["--item", "x", "--model", "s3://b/m.json"], "no model"),
    ("collection", lambda items, out: {**payload(items, out), "process": {}}, ["--model", "m"], "no output"),
]


@pytest.mark.parametrize(("name", "make", "args", "words"), BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_bad_event_exits_2_with_one_line(items, tmp_path, monkeypatch, name, make, args, words):
    monkeypatch.delenv("STACRRN_OUTPUT", raising=False)
    out = tmp_path / "out"
    proc = stage(name, make(items, out), *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_local_params_of_the_payload_reach_the_solve(items, tmp_path, monkeypatch):
    monkeypatch.delenv("STACRRN_OUTPUT", raising=False)
    event = payload(items, tmp_path / "out", local_params={"extent": "image", "decay": 3})
    assert Payload.from_event(event).options.model.local_params == LocalParams(extent="image", decay=3.0)
    statistics = stage("statistics", event, "--tile", "0")
    assert statistics.returncode == 0, statistics.stderr
    solved = stage("solve", event)
    assert solved.returncode == 0, solved.stderr
    assert json.loads(solved.stdout)["model"]


def test_unreadable_event_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "stacrrn.serverless", "solve", "--event", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot read the event")


def test_handlers_raise_the_error_category_step_functions_matches(tmp_path, monkeypatch):
    from stacrrn.errors import InputError, MissingAssetError, RunLockedError, SolveError, TemporaryError
    from stacrrn.serverless import handlers

    monkeypatch.setenv("STACRRN_OUTPUT", str(tmp_path))
    with pytest.raises(InputError) as info:
        handlers.apply({"type": "Feature"})
    assert type(info.value) is InputError and "FeatureCollection" in str(info.value)
    assert type(handlers.category(MissingAssetError("gone\nsecond line"))) is InputError
    assert str(handlers.category(MissingAssetError("gone\nsecond line"))) == "gone"
    assert type(handlers.category(RunLockedError("busy"))) is TemporaryError
    assert type(handlers.category(SolveError("singular"))).__name__ == "StacrrnError"
