"""Add a run's collection and items to a STAC API with the transactions extension."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from stacrrn.errors import OutputError
from stacrrn.io.retry import RETRY_STATUS, retrying
from stacrrn.pipeline.execution.progress import Progress, no_progress

TIMEOUT = 30.0


def _attempt(method: str, url: str, body: dict[str, Any]) -> requests.Response:
    response = requests.request(method, url, json=body, timeout=TIMEOUT)
    if response.status_code in RETRY_STATUS:
        raise ConnectionError(f"HTTP {response.status_code} from {url}")
    return response


def _send(method: str, url: str, body: dict[str, Any]) -> requests.Response:
    """One request, repeated on timeouts, dropped connections and 408/429/5xx answers.

    A repeated create is harmless: a POST answered 409 becomes a PUT.
    """
    try:
        return retrying(f"{method} {url}", lambda: _attempt(method, url, body))
    except requests.RequestException as exc:
        raise OutputError(f"cannot reach the STAC API to publish ({url}): {exc}") from None


def _check(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise OutputError(
            f"the STAC API refused {what} (HTTP {response.status_code}: {response.text[:200]}); "
            "does it enable the transactions extension?"
        )


def publish_items(
    api: str, collection: dict[str, Any], items: Sequence[dict[str, Any]], progress: Progress = no_progress
) -> str:
    """Create or update ``collection`` and its ``items`` in the STAC API at ``api``.

    Items are upserted (POST, then PUT when they already exist), so publishing a run again
    replaces its items instead of duplicating them. ``progress`` gets ``("publish", done, total)``.

    Returns
    -------
    str
        The collection's URL in the API.

    Raises
    ------
    OutputError
        If the API cannot be reached or refuses a write.
    """
    base = api.rstrip("/")
    cid = collection["id"]
    coll = {k: v for k, v in collection.items() if k != "links"} | {"links": []}
    r = _send("POST", f"{base}/collections", coll)
    if r.status_code == 409:
        r = _send("PUT", f"{base}/collections/{cid}", coll)
    _check(r, f"collection {cid}")
    progress("publish", 0, len(items))
    for done, item in enumerate(items, start=1):
        body = item | {"collection": cid, "links": [ln for ln in item["links"] if ln["rel"] != "self"]}
        r = _send("POST", f"{base}/collections/{cid}/items", body)
        if r.status_code == 409:
            r = _send("PUT", f"{base}/collections/{cid}/items/{item['id']}", body)
        _check(r, f"item {item['id']}")
        progress("publish", done, len(items))
    return f"{base}/collections/{cid}"
