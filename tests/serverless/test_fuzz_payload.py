"""Fuzzing serverless payloads: a malformed event gives a one-line StacrrnError, never a crash.

:meth:`Payload.from_event` must return a :class:`Payload` or raise a
:class:`~stacrrn.errors.StacrrnError` whose message is one line, whatever the event holds.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacrrn.errors import StacrrnError
from stacrrn.pipeline.run_setup import RunOptions
from stacrrn.serverless.payload import OUTPUT_ENV, Payload
from tests.strategies import DELETE, garbage, json_values, mutate

SCALE = int(os.environ.get("STACRRN_FUZZ_SCALE", "1"))
"""Multiplier of every fuzz test's number of examples (e.g. 20 for a long local hunt)."""

_names = itertools.count()


def fuzz(examples: int) -> settings:
    """Hypothesis settings of a fuzz test: ``examples`` inputs (times ``$STACRRN_FUZZ_SCALE``), no deadline."""
    return settings(
        max_examples=examples * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


def check_error(exc: BaseException) -> None:
    """A refusal must come from the error tree with a one-line message."""
    assert isinstance(exc, StacrrnError), f"{type(exc).__name__} escaped: {exc!r}"
    assert "\n" not in str(exc), f"multi-line message: {str(exc)!r}"
    assert str(exc).strip(), "empty message"


def item(item_id: str, day: int) -> dict[str, Any]:
    """A valid STAC item with one raster asset."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": "scenes",
        "geometry": {"type": "Polygon", "coordinates": [[[10, 45], [10.1, 45], [10.1, 45.1], [10, 45.1], [10, 45]]]},
        "bbox": [10, 45, 10.1, 45.1],
        "properties": {"datetime": f"2024-06-{day:02d}T10:00:00Z"},
        "links": [],
        "assets": {
            "B04": {
                "href": f"s3://b/{item_id}/B04.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "raster:bands": [{"scale": 0.0001}],
            }
        },
    }


def valid_event(out: str = "s3://bucket/out") -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [item("a", 1), item("b", 1), item("c", 2)],
        "process": {"upload_options": {"path_template": out}, "tasks": {"stacrrn": {"tiles": 2}}},
    }


def exercise(event: dict[str, Any]) -> Payload | None:
    """Parse ``event``; success must be a consistent payload."""
    try:
        payload = Payload.from_event(event)
    except Exception as exc:  # the check is the assertion
        check_error(exc)
        return None
    assert payload.items and isinstance(payload.out, str) and payload.out
    assert isinstance(payload.tiles, int) and payload.tiles >= 1
    assert isinstance(payload.options, RunOptions)
    return payload


@pytest.fixture(autouse=True)
def _no_output_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OUTPUT_ENV, raising=False)


OPTION_NAMES = [f.name for f in fields(RunOptions)]
PLAUSIBLE = {
    "assets": [["B04"], "B04", []],
    "mode": ["mosaic", "timeseries", "x"],
    "neighbours": [1, 0, -3, 2.5],
    "star": [True, False],
    "references": [["a"], "a", [0]],
    "method": ["global", "global+local", "magic"],
    "block_size": [1000.0, 0, -1],
    "n_blocks": [4, 0],
    "crs": ["EPSG:32633", "nonsense"],
    "resolution": [10.0, 0.0, -5],
    "min_overlap": [64, -1],
    "chunk_size": [512, 0],
    "collection_id": ["out", ""],
    "cloud_mask": ["auto", "none", "cloudy"],
    "reflectance": [[0.0001, 0.0], [1], "ab"],
    "pif": [{}, {"methods": ["imad"]}, {"methods": "imad"}, {"threshold": "x"}, {"nope": 1}, "ab", [["methods", []]]],
    "estimator": ["spread", "ols", "x"],
    "local_params": [
        {},
        {"ridge": 1.0},
        {"extent": "image", "decay": 3},
        {"extent": "nope"},
        {"decay": 0},
        {"decay": True},
        {"nope": 1},
        [],
        "ab",
    ],
}

params = st.dictionaries(
    st.sampled_from([*OPTION_NAMES, "tiles"]) | st.text(max_size=6),
    st.one_of(garbage, st.sampled_from([v for values in PLAUSIBLE.values() for v in values])),
    max_size=4,
)
"""``process.tasks.stacrrn``: known and unknown keys with plausible and wrong values."""

EVENT_PATHS: list[tuple[str | int, ...]] = [
    ("type",),
    ("features",),
    ("features", 0),
    ("features", 0, "id"),
    ("features", 0, "type"),
    ("features", 0, "properties"),
    ("features", 0, "properties", "datetime"),
    ("features", 0, "bbox"),
    ("features", 0, "geometry"),
    ("features", 0, "links"),
    ("features", 0, "assets"),
    ("features", 0, "assets", "B04"),
    ("features", 0, "assets", "B04", "href"),
    ("features", 0, "assets", "B04", "type"),
    ("features", 0, "assets", "B04", "roles"),
    ("features", 1, "id"),
    ("process",),
    ("process", "tasks"),
    ("process", "tasks", "stacrrn"),
    ("process", "tasks", "stacrrn", "tiles"),
    ("process", "upload_options"),
    ("process", "upload_options", "path_template"),
    ("tiles",),
    ("url",),
]
changes = st.lists(st.tuples(st.sampled_from(EVENT_PATHS), st.just(DELETE) | garbage), min_size=1, max_size=3)


def test_valid_event() -> None:
    payload = exercise(valid_event())
    assert payload is not None and [it.id for it in payload.items] == ["a", "b", "c"] and payload.tiles == 2


@fuzz(400)
@given(changes=changes, env=st.booleans())
def test_mutated_event(tmp_path: Path, changes: list[tuple[tuple[str | int, ...], object]], env: bool) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if env:
            mp.setenv(OUTPUT_ENV, str(tmp_path / "out"))
        exercise(mutate(valid_event(), changes))


@fuzz(400)
@given(task=params | garbage, upload=garbage | st.fixed_dictionaries({"path_template": garbage}), tiles=garbage)
def test_malformed_process(tmp_path: Path, task: object, upload: object, tiles: object) -> None:
    event = valid_event()
    event["process"]["tasks"]["stacrrn"] = task
    event["process"]["upload_options"] = upload
    if tiles is not None:
        event["tiles"] = tiles
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(OUTPUT_ENV, str(tmp_path / "out"))
        exercise(event)


@fuzz(60)
@given(event=st.dictionaries(st.sampled_from(["type", "features", "process", "tiles", "url"]), garbage, max_size=5))
def test_arbitrary_event(tmp_path: Path, event: dict[str, Any]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(OUTPUT_ENV, str(tmp_path / "out"))
        exercise(event)


@fuzz(40)
@given(event=json_values)
def test_arbitrary_json_event(event: object) -> None:
    exercise(event if isinstance(event, dict) else {"features": event})


STORED = {
    "missing": None,
    "empty": b"",
    "not-json": b"{not json",
    "not-utf8": b"\xff\xfe\x00{",
    "list": b"[1, 2]",
    "string": b'"payload"',
    "deep": b"[" * 100_000,
    "valid": json.dumps(valid_event()).encode(),
    "no-features": json.dumps({**valid_event(), "features": []}).encode(),
}


@fuzz(60)
@given(
    stored=st.sampled_from(sorted(STORED)),
    inline=st.dictionaries(st.sampled_from(["type", "features", "process", "tiles"]), garbage, max_size=2),
    directory=st.booleans(),
)
def test_url_event(tmp_path: Path, stored: str, inline: dict[str, Any], directory: bool) -> None:
    path = tmp_path / f"p{next(_names)}.json"
    if STORED[stored] is not None:
        path.write_bytes(STORED[stored] or b"")
    url = str(tmp_path) if directory else str(path)
    exercise({"url": url, **inline})


@fuzz(40)
@given(
    url=garbage
    | st.sampled_from(
        ["", "nope://x/y.json", "memory://missing.json", "gs://b/p.json", "file:///no/p.json", "/", "\x00", "a\nb"]
    )
)
def test_url_garbage(url: object) -> None:
    exercise({"url": url})


# --- regressions: the minimal events hypothesis found -------------------------------------------


def _refused(event: dict[str, Any], words: str) -> None:
    with pytest.raises(StacrrnError, match=words) as caught:
        Payload.from_event(event)
    check_error(caught.value)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ([(("features", 0, "properties"), None)], "not a STAC item"),  # was AttributeError in pystac
        ([(("features", 0), 1)], "not a STAC item"),
        ([(("features", 0, "assets", "B04", "type"), 5)], "asset 'B04' has a 'type'"),  # later crashed is_raster
        ([(("features", 0, "assets", "B04", "roles"), -1)], "asset 'B04' has 'roles'"),
        ([(("features", 0, "id"), 1)], "id is not"),  # was TypeError sorting 1 against 'b'
        ([(("features", 0, "properties", "datetime"), None)], "not a STAC item"),
        ([(("process", "tasks"), [1, 2])], "process.tasks of the event must be a JSON object"),  # was AttributeError
        ([(("process", "tasks", "stacrrn"), [None])], "process.tasks.stacrrn"),  # was TypeError in dict()
        ([(("process", "tasks", "stacrrn"), ["a"])], "process.tasks.stacrrn"),  # was ValueError in dict()
        ([(("process", "upload_options"), "s3://b/out")], "process.upload_options"),  # was AttributeError
        ([(("process",), [{"tasks": {}}])], "process of the event"),  # was AttributeError
        ([(("process", "upload_options", "path_template"), 1.5)], "path_template must be a string"),  # was accepted
    ],
)
def test_malformed_event_regressions(changes: list[tuple[tuple[str | int, ...], object]], words: str) -> None:
    _refused(mutate(valid_event(), changes), words)


def test_start_datetime_garbage_is_refused() -> None:
    event = valid_event()
    event["features"][0]["properties"] = {"datetime": None, "start_datetime": "x", "end_datetime": "y"}
    _refused(event, "datetime")


@pytest.mark.parametrize("url", [True, {}, [], "", "a\nb"])
def test_url_not_a_string(url: object) -> None:
    _refused({"url": url}, "'url' must be")  # was TypeError/AttributeError inside fsspec


def test_url_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000)
    _refused({"url": str(path)}, "cannot read the payload")  # was RecursionError


def test_url_unknown_protocols(tmp_path: Path) -> None:
    _refused({"url": "nope://x/p.json"}, "cannot read the payload")
    _refused({"url": str(tmp_path)}, "cannot read the payload")


def test_url_valid_payload(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(valid_event()))
    payload = exercise({"url": str(path), "tiles": 3})
    assert payload is not None and payload.tiles == 3


# --- run parameters of the wrong type or shape ----------------------------------------------------


@pytest.mark.parametrize("neighbours", ["x", [1]])
def test_neighbours_not_a_number(neighbours: object) -> None:
    _refused(mutate(valid_event(), [(("process", "tasks", "stacrrn", "neighbours"), neighbours)]), "neighbours")


@pytest.mark.parametrize("pif", ["ab", [[1]]])
def test_pif_not_an_object(pif: object) -> None:
    _refused(mutate(valid_event(), [(("process", "tasks", "stacrrn", "pif"), pif)]), "pif")


@pytest.mark.parametrize(
    "params", [{"\n": None}, {"pif": {"a\nb": 1}}, {"local_params": {"a\nb": 1}}], ids=["top", "pif", "local"]
)
def test_unknown_key_with_newline(params: dict[str, Any]) -> None:
    _refused(mutate(valid_event(), [(("process", "tasks", "stacrrn"), params)]), "unknown|unexpected")


@pytest.mark.parametrize(
    ("key", "value"),
    [("assets", "B04"), ("chunk_size", "x"), ("star", "yes"), ("reflectance", "ab"), ("block_size", True)],
)
def test_parameter_of_the_wrong_type(key: str, value: object) -> None:
    _refused(mutate(valid_event(), [(("process", "tasks", "stacrrn", key), value)]), key)
