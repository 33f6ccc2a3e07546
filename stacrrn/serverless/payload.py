"""Reading a stac-task/cirrus payload: items, run parameters, output location, stage selectors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
import pystac

from stacrrn.errors import ParameterError
from stacrrn.io.stac import check_item, sort_by_date
from stacrrn.io.storage import Storage
from stacrrn.options import RunOptions
from stacrrn.pipeline.run_setup import RunSetup, prepare

TASK = "stacrrn"
"""Name of the task block holding the run parameters: ``process.tasks.stacrrn``."""

OUTPUT_ENV = "STACRRN_OUTPUT"
"""Output prefix used when the payload's ``upload_options.path_template`` is absent."""


def load_event(event: dict[str, Any]) -> dict[str, Any]:
    """The payload itself, or the one stored at ``event["url"]`` (for payloads too large to pass inline).

    Raises
    ------
    ParameterError
        If the URL is not a string, cannot be read or holds no JSON object.
    """
    url = event.get("url")
    if url is None or "features" in event:
        return event
    if not isinstance(url, str) or not url or not url.isprintable():
        raise ParameterError(f"the event's 'url' must be the path or URL of a payload JSON file, got {url!r:.60}")
    try:
        with fsspec.open(url, "r") as f:
            loaded = json.load(f)
    except (OSError, ValueError, ImportError, RecursionError) as exc:  # ImportError: fsspec lacks the protocol
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ParameterError(f"cannot read the payload at {url}: {first}") from None
    if not isinstance(loaded, dict):
        raise ParameterError(f"the payload at {url} is not a JSON object")
    return {**loaded, **{k: v for k, v in event.items() if k != "url"}}


def _block(value: object, name: str) -> dict[str, Any]:
    """A JSON object of the event (empty when absent or null).

    Raises
    ------
    ParameterError
        If it is something else than an object.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"{name} of the event must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Payload:
    """A parsed payload.

    Attributes
    ----------
    raw
        The payload as received (inline).
    items
        The input items, sorted by date.
    options
        The run parameters of ``process.tasks.stacrrn``.
    out
        Output prefix (``process.upload_options.path_template``, else ``$STACRRN_OUTPUT``).
    tiles
        Number of statistics tiles (top-level ``tiles``, else the task's ``tiles``, default 1).
    """

    raw: dict[str, Any]
    items: list[pystac.Item]
    options: RunOptions
    out: str
    tiles: int

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Payload:
        """Parse and check a payload.

        Raises
        ------
        ParameterError
            For anything malformed: not a FeatureCollection, no items, bad parameters, no output.
        InputError
            For an item whose id, date, bbox or assets have the wrong type.
        """
        raw = load_event(event)
        if raw.get("type") != "FeatureCollection" or not isinstance(raw.get("features"), list) or not raw["features"]:
            raise ParameterError("the event must be a FeatureCollection of STAC items with a 'process' block")
        try:
            parsed = [pystac.Item.from_dict(f) for f in raw["features"]]
        except (KeyError, TypeError, ValueError, AttributeError, pystac.STACError, pystac.STACTypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ParameterError(f"a feature of the event is not a STAC item: {first}") from None
        for item in parsed:
            check_item(item, "the event")
        items = sort_by_date(parsed)
        process = _block(raw.get("process"), "process")
        params = dict(_block(_block(process.get("tasks"), "process.tasks").get(TASK), f"process.tasks.{TASK}"))
        tiles = raw.get("tiles", params.pop("tiles", 1))
        out = _block(process.get("upload_options"), "process.upload_options").get("path_template")
        if out is not None and not isinstance(out, str):
            raise ParameterError(
                f"process.upload_options.path_template must be a string (an output prefix), got {out!r:.60}"
            )
        out = out or os.environ.get(OUTPUT_ENV)
        if not out:
            raise ParameterError(f"no output: set process.upload_options.path_template or ${OUTPUT_ENV}")
        if not isinstance(tiles, int) or isinstance(tiles, bool) or tiles < 1:
            raise ParameterError(f"tiles must be a whole number of at least 1, got {tiles!r}")
        options = RunOptions.from_dict(params)
        options.check()
        if options.output.format != "cog":
            raise ParameterError("serverless stages write one COG item per input item: format must be cog")
        return cls(raw, items, options, out, tiles)

    def field(self, name: str, kind: type) -> Any:
        """A required top-level stage selector (``tile``, ``item``, ``model``).

        Raises
        ------
        ParameterError
            If it is missing or of the wrong type.
        """
        value = self.raw.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ParameterError(f"the event needs a top-level {name!r} ({kind.__name__}) for this stage")
        return value

    def setup(self) -> RunSetup:
        """Open the items' assets and lay out the run, as every stage does identically."""
        return prepare(self.items, self.options)

    @contextmanager
    def storage(self) -> Iterator[Storage]:
        """The output storage; this invocation's temporary keys are removed on exit."""
        storage = Storage(self.out)
        try:
            yield storage
        finally:
            storage.cleanup()
