"""The one rule for output keys derived from input ids: item ids and asset keys.

A run writes ``<item id>/<item id>.json`` and ``<item id>/<asset file>-<digest>.tif`` beside
its own files (``collection.json``, ``stacrrn-*.json``, ``stacrrn.lock``, the temporary area
``.stacrrn-tmp``). Ids come from catalogs stacrrn does not control, so before anything is
written every id is checked (one path segment, never ``..``, never hidden, never one of the
run's own names, not too long) and every asset key is encoded into one safe, unique path
segment. Folder and S3 storage use the same keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from stacrrn.errors import InputError

MAX_SEGMENT = 200
"""Longest key segment in bytes (file systems allow 255; a digest and a suffix are added)."""

RUN_FILES = frozenset(
    {"collection.json", "stacrrn-manifest.json", "stacrrn-statistics.npz", "stacrrn-statistics.json", "stacrrn.lock"}
)
RUN_PREFIXES = ("stacrrn-", "reference-blockmap-", ".")
"""Names at the root that belong to the run (its model, block map, lock, temporary area)."""

RUN_ASSETS = frozenset({"model", "blockmap", "clear-mask"})
"""Asset keys of an output item that the run writes itself."""


def check_item_id(item_id: str) -> None:
    """Refuse an item id that cannot be a folder of its own under the output root.

    Raises
    ------
    InputError
        For an empty id, ``.``/``..``, a path separator or control character, a name of the
        run's own files (``stacrrn-*``, ``collection.json``, a leading dot), or more than
        :data:`MAX_SEGMENT` bytes.
    """
    problem = None
    if not item_id or item_id in (".", ".."):
        problem = "is not a name"
    elif "/" in item_id or "\\" in item_id or not item_id.isprintable():
        problem = "contains a path separator or a control character"
    elif item_id in RUN_FILES or item_id.startswith(RUN_PREFIXES):
        problem = "would collide with the run's own files (collection.json, stacrrn-*, hidden names)"
    elif len(item_id.encode()) > MAX_SEGMENT:
        problem = f"is longer than {MAX_SEGMENT} bytes"
    if problem:
        raise InputError(f"item id {item_id[:80]!r} {problem}: it cannot name an output folder; fix the item JSON")


def asset_file_name(key: str) -> str:
    """One path segment for an asset key: percent-encoded, so distinct keys never share a file.

    ``red`` stays ``red``; ``x/image`` becomes ``x%2Fimage``; a leading dot is encoded too.

    Raises
    ------
    InputError
        If the encoded key is longer than :data:`MAX_SEGMENT` bytes.
    """
    name = quote(key, safe="-_~")
    if len(name) > MAX_SEGMENT:
        raise InputError(f"asset key {key[:80]!r} is longer than {MAX_SEGMENT} bytes encoded; fix the item JSON")
    return name.replace(".", "%2E") if name.startswith(".") else name


def check_output_keys(item_ids: Sequence[str], asset_keys: Iterable[str]) -> None:
    """Check every key a run will write, before it writes any.

    Raises
    ------
    InputError
        For an id :func:`check_item_id` refuses, two items with the same id (one would overwrite
        the other), or a normalized asset whose key is one of the run's own (:data:`RUN_ASSETS`).
    """
    for item_id in item_ids:
        check_item_id(item_id)
    twice = [i for i, n in Counter(item_ids).items() if n > 1]
    if twice:
        raise InputError(f"item id {twice[0][:80]!r} is given {Counter(item_ids)[twice[0]]} times; ids must be unique")
    for key in asset_keys:
        if key in RUN_ASSETS:
            raise InputError(
                f"asset {key!r} has the key of an asset stacrrn writes ({', '.join(sorted(RUN_ASSETS))}); "
                "it cannot be normalized under that key"
            )
        asset_file_name(key)
