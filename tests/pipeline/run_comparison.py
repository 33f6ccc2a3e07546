"""Comparing two runs' output prefixes on S3: same objects, same bytes, JSON equal but for timestamps."""

from __future__ import annotations

import hashlib
import json

import s3fs

VOLATILE = ("processing:datetime", "created", "updated", "started", "run_id", "resumed_from")
"""JSON fields that say when or by which run, not what: left out of comparisons."""


def objects(fs: s3fs.S3FileSystem, prefix: str) -> dict[str, bytes]:
    """Every object under ``bucket/prefix``, keyed relative to it."""
    fs.invalidate_cache()
    return {key[len(prefix) + 1 :]: fs.cat(key) for key in fs.find(prefix)}


def comparable(key: str, data: bytes, prefix: str) -> object:
    """An object's SHA-256, or for JSON its content without :data:`VOLATILE` fields and with ``prefix`` masked."""
    if not key.endswith(".json"):
        return hashlib.sha256(data).hexdigest()

    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value.replace(prefix, "PREFIX") if isinstance(value, str) else value

    return clean(json.loads(data))


def assert_same_outputs(got: dict[str, bytes], got_prefix: str, want: dict[str, bytes], want_prefix: str) -> None:
    """The same keys, byte-identical rasters, and equal JSON (see :func:`comparable`)."""
    assert sorted(got) == sorted(want), "orphan, missing or temporary objects"
    for key in want:
        assert comparable(key, got[key], got_prefix) == comparable(key, want[key], want_prefix), key


def assert_visible_items_whole(fs: s3fs.S3FileSystem, prefix: str) -> int:
    """Every item JSON under ``prefix`` (what a STAC search of the outputs finds) points at whole assets.

    Returns the number of items.
    """
    fs.invalidate_cache()
    keys = list(fs.glob(f"{prefix}/*/*.json"))
    for key in keys:
        item = json.loads(fs.cat(key))
        for asset in item["assets"].values():
            data = fs.cat(asset["href"].removeprefix("s3://"))
            if "file:checksum" in asset:
                assert "1220" + hashlib.sha256(data).hexdigest() == asset["file:checksum"], asset["href"]
    return len(keys)
