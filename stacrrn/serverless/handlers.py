"""The four serverless stages as AWS Lambda handlers: ``stacrrn.serverless.handlers.<stage>``.

Each parses the payload (:class:`~stacrrn.serverless.payload.Payload`), configures GDAL
for the environment's S3 endpoint, calls one function of :mod:`stacrrn.pipeline.stages`
and returns a small JSON result.

Errors leave a handler in one way (:func:`stage`): as the error tree's category, so a Step
Functions state retries ``TemporaryError`` (a rerun may cure it), catches ``InputError``
(bad input: retrying cannot help) and fails on anything else, with the one-line message of
:func:`stacrrn.errors.report` as Lambda's ``errorMessage``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from stacrrn.errors import InputError, StacrrnError, TemporaryError, report
from stacrrn.io.storage import configure_cloud
from stacrrn.pipeline.run_setup import collection_id_of
from stacrrn.pipeline.stages import (
    apply_item,
    save_tile_statistics,
    solve_from_tiles,
    write_run_collection,
)
from stacrrn.serverless.payload import Payload

Handler = Callable[[dict[str, Any], object | None], dict[str, Any]]


def category(exc: StacrrnError) -> StacrrnError:
    """``exc`` as its category (:class:`InputError`, :class:`TemporaryError` or :class:`StacrrnError`).

    Lambda names an error by its class; Step Functions matches names exactly, so the
    state machine sees the three categories rather than every leaf of the tree.
    """
    kind = next(k for k in (InputError, TemporaryError, StacrrnError) if isinstance(exc, k))
    return kind(report(exc).message)


def stage(fn: Handler) -> Handler:
    """Make ``fn`` a handler whose stacrrn errors leave as their category with a one-line message."""

    @functools.wraps(fn)
    def handler(event: dict[str, Any], context: object | None = None) -> dict[str, Any]:
        try:
            return fn(event, context)
        except StacrrnError as exc:
            raise category(exc) from exc

    return handler


def _payload(event: dict[str, Any]) -> Payload:
    configure_cloud()
    return Payload.from_event(event)


@stage
def statistics(event: dict[str, Any], context: object | None = None) -> dict[str, Any]:
    """Map step: pass-1 moments of tile ``event["tile"]`` of ``tiles`` -> S3."""
    p = _payload(event)
    tile = p.field("tile", int)
    with p.storage() as storage:
        href = save_tile_statistics(p.setup(), storage, tile, p.tiles)
    return {"tile": tile, "tiles": p.tiles, "statistics": href}


@stage
def solve(event: dict[str, Any], context: object | None = None) -> dict[str, Any]:
    """Reduce step: all tiles' moments -> model JSON (and reference block map); returns the payload with ``model``."""
    p = _payload(event)
    with p.storage() as storage:
        model, model_href, reference_href, warnings = solve_from_tiles(p.setup(), storage, p.tiles)
    result = {k: v for k, v in p.raw.items() if k not in ("tile", "item")}
    return result | {
        "model": model_href,
        "model_digest": model.digest(),
        "reference_blockmap": reference_href,
        "warnings": warnings,
    }


@stage
def apply(event: dict[str, Any], context: object | None = None) -> dict[str, Any]:
    """Map step: corrected COGs, block map and item JSON of ``event["item"]``; returns that item."""
    p = _payload(event)
    model_href, item_id = p.field("model", str), p.field("item", str)
    with p.storage() as storage:
        item = apply_item(p.setup(), storage, model_href, item_id)
    return {"type": "FeatureCollection", "features": [item]}


@stage
def collection(event: dict[str, Any], context: object | None = None) -> dict[str, Any]:
    """Final step: the run's collection, once every item is published with the model."""
    p = _payload(event)
    model_href, collection_id = p.field("model", str), collection_id_of(p.items, p.options.output.collection_id)
    with p.storage() as storage:
        href, _ = write_run_collection(p.items, storage, model_href, collection_id, p.raw.get("reference_blockmap"))
    return {"collection": href, "items": len(p.items), "model": model_href}


STAGES = {"statistics": statistics, "solve": solve, "apply": apply, "collection": collection}
"""The handlers by stage name."""
