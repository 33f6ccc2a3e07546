"""The run manifest: what a run set out to do, what it finished, kept or skipped, and how it ended.

``stacrrn-manifest.json`` sits beside the outputs and is rewritten (atomically) as the run
goes: when it starts, when the model is known, as items are published (at most every
:data:`SAVE_EVERY` seconds), and when it ends. A run that is killed leaves a manifest with
``status: running`` and the items it finished; run again, it keeps those items (their item
JSON, published last, says they are complete and made with this model) and redoes the rest.
The manifest is the record for people and schedulers; the item JSON stays the proof.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stacrrn._version import __version__
from stacrrn.io.storage import Storage

MANIFEST_KEY = "stacrrn-manifest.json"
"""Key of the manifest under the output location."""

SAVE_EVERY = 2.0
"""Least seconds between two saves while items are published."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class RunManifest:
    """The manifest of one run (see the module docstring).

    Attributes
    ----------
    storage
        Where it is written.
    items
        Per input item id: ``{"status": pending|done|kept|skipped, "href"?, "reason"?}``.
    """

    storage: Storage
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "running"
    started: str = field(default_factory=_now)
    model: dict[str, str] = field(default_factory=dict)
    previous: dict[str, Any] | None = None
    reason: str | None = None
    _saved: float = 0.0

    @classmethod
    def begin(cls, storage: Storage, item_ids: Sequence[str], skipped: dict[str, str] | None = None) -> RunManifest:
        """Start the manifest of a run over ``item_ids`` (``skipped``: ids already left out, with reasons)."""
        previous = read_manifest(storage)
        manifest = cls(storage, {i: {"status": "pending"} for i in item_ids}, previous=previous)
        for item_id, reason in (skipped or {}).items():
            manifest.items[item_id] = {"status": "skipped", "reason": reason}
        manifest.save()
        return manifest

    def model_known(self, digest: str, href: str) -> None:
        """Record the model the items are made with."""
        self.model = {"digest": digest, "href": href}
        self.save()

    def item_done(self, item_id: str, href: str, kept: bool = False) -> None:
        """Record an item published by this run (or ``kept`` from an earlier one)."""
        self.items[item_id] = {"status": "kept" if kept else "done", "href": href}
        self.save(force=False)

    def item_skipped(self, item_id: str, reason: str) -> None:
        """Record an item left out (``--on-error skip``) and why."""
        self.items[item_id] = {"status": "skipped", "reason": reason}
        self.save()

    def finish(self, status: str, reason: str | None = None) -> None:
        """Record how the run ended: ``complete``, or ``failed`` with the one-line reason."""
        self.status = status
        self.reason = reason
        self.save()

    def skipped(self) -> dict[str, str]:
        """Ids of the skipped items with their reasons."""
        return {i: d["reason"] for i, d in self.items.items() if d["status"] == "skipped"}

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON."""
        counts: dict[str, int] = {}
        for d in self.items.values():
            counts[d["status"]] = counts.get(d["status"], 0) + 1
        return {
            "type": "stacrrn-run-manifest",
            "software": f"stacrrn {__version__}",
            "run_id": self.storage.run_id,
            "status": self.status,
            **({"reason": self.reason} if self.reason else {}),
            "started": self.started,
            "updated": _now(),
            "resumed_from": None if self.previous is None else self.previous.get("run_id"),
            "model": self.model,
            "counts": counts,
            "items": self.items,
        }

    def save(self, force: bool = True) -> None:
        """Write the manifest (unless ``force`` is false and it was written less than :data:`SAVE_EVERY` ago)."""
        if not force and time.monotonic() - self._saved < SAVE_EVERY:
            return
        self.storage.put_text(json.dumps(self.to_dict(), indent=1), MANIFEST_KEY)
        self._saved = time.monotonic()


def read_manifest(storage: Storage) -> dict[str, Any] | None:
    """The manifest an earlier run left at ``storage``, if any (and readable)."""
    return storage.read_json(MANIFEST_KEY)
