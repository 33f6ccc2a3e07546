"""One run at a time per output location: a lease-based lock object beside the outputs.

A run creates ``stacrrn.lock`` under its output location exclusively (``O_EXCL`` locally,
``If-None-Match: *`` on S3) and renews its lease while it works; a second run finds the lock
and stops with :class:`~stacrrn.errors.RunLockedError` (exit code 75) before writing
anything. A lock is stale, and may be taken over, when its lease has run out (the run died
on another machine) or when its process is gone on this machine (a killed run being
resumed). Taking over replaces exactly the stale version (``If-Match`` on S3, a
compare-and-write under ``flock`` locally), so of two runs resuming at once only one proceeds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from types import TracebackType
from typing import Any, Self

from stacrrn.errors import RunLockedError
from stacrrn.io.storage import Storage

log = logging.getLogger(__name__)

LOCK_KEY = "stacrrn.lock"
"""Key of the lock object under the output location."""

LEASE_ENV = "STACRRN_LOCK_LEASE"
"""Environment variable overriding :data:`LEASE_SECONDS`."""

LEASE_SECONDS = 600.0
"""How long a lock stays valid without renewal; renewed every third of it."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def lease_seconds() -> float:
    """``$STACRRN_LOCK_LEASE`` or :data:`LEASE_SECONDS`."""
    try:
        return max(1.0, float(os.environ.get(LEASE_ENV, LEASE_SECONDS)))
    except ValueError:
        return LEASE_SECONDS


class OutputLock:
    """The lock of one run on one output location (a context manager).

    Parameters
    ----------
    storage
        The run's output location.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.token = uuid.uuid4().hex
        self.lease = lease_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> str:
        now = _now()
        return json.dumps(
            {
                "token": self.token,
                "run_id": self.storage.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "renewed": now.isoformat(),
                "expires": (now + dt.timedelta(seconds=self.lease)).isoformat(),
            }
        )

    def _current(self) -> tuple[dict[str, Any], str] | None:
        """The lock's content and version tag, if there is a lock."""
        found = self.storage.tagged_text(LOCK_KEY)
        return None if found is None else (_parse(found[0]), found[1])

    def _mine(self, current: tuple[dict[str, Any], str] | None) -> bool:
        return current is not None and current[0].get("token") == self.token

    def _take(self) -> None:
        self._thread = threading.Thread(target=self._renew, name="stacrrn-lock", daemon=True)
        self._thread.start()

    def acquire(self) -> None:
        """Take the lock, or a stale one over.

        Raises
        ------
        RunLockedError
            If another live run holds the location.
        """
        if self.storage.create_text(LOCK_KEY, self._body()) or self._mine(current := self._current()):
            return self._take()
        if current is None:  # released in between: try once more
            if self.storage.create_text(LOCK_KEY, self._body()):
                return self._take()
            current = self._current()
        holder = current[0] if current else {}
        if current is not None and stale(holder):
            if self.storage.replace_text_if(LOCK_KEY, self._body(), current[1]):
                log.info("took over the stale lock of run %s", holder.get("run_id"))
                return self._take()
            holder = (self._current() or ({}, ""))[0]
        raise RunLockedError(
            f"{self.storage.url} is being written by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, lease until {holder.get('expires', '?')}); wait for it to finish, or delete "
            f"{self.storage.href(LOCK_KEY)} if that run is dead"
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                current = self._current()
                if current is None or not self._mine(current):
                    log.warning("the lock on %s was taken by another run", self.storage.url)
                    return
                self.storage.replace_text_if(LOCK_KEY, self._body(), current[1])
            except Exception as exc:  # a renewal that fails is retried at the next beat; the run goes on
                log.warning("could not renew the lock on %s: %s", self.storage.url, exc)

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._mine(self._current()):
            self.storage.delete_key(LOCK_KEY)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _parse(text: str) -> dict[str, Any]:
    try:
        d = json.loads(text)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def stale(holder: dict[str, Any]) -> bool:
    """True if the lock ``holder`` wrote is unreadable, past its lease, or its process is gone on this host."""
    try:
        expires = dt.datetime.fromisoformat(str(holder["expires"]))
    except (KeyError, ValueError):
        return True
    if expires < _now():
        return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)
