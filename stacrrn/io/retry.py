"""Retries with exponential backoff for whole-object reads and writes, and what counts as transient.

GDAL retries its own HTTP requests (``GDAL_HTTP_MAX_RETRY``, set by
:func:`stacrrn.io.storage.configure_cloud`) and botocore its S3 calls (standard mode). These
retries sit one level up, around an operation that must happen as a whole: reading a chunk
of an image, uploading a COG, publishing an object, a STAC API request. They repeat only
faults a repeat can cure (timeouts, dropped connections, throttling and 5xx answers), never
a missing object, a denied request or bad data.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from stacrrn.errors import TransientIOError

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS_ENV = "STACRRN_RETRY_ATTEMPTS"
"""Environment variable overriding :data:`ATTEMPTS`."""

ATTEMPTS = 6
"""Tries of a whole operation, the first one included."""

BASE_DELAY = 0.2
"""Seconds before the second try; doubled for every further one (with full jitter), at most :data:`MAX_DELAY`."""

MAX_DELAY = 5.0

NETWORK_TIMEOUT = 60.0
"""Default seconds to wait for a network read (connect, or the next bytes of an answer): ``--timeout``."""

RETRY_STATUS = (408, 429, 500, 502, 503, 504)
"""HTTP status codes worth another try (timeout, throttling, server errors)."""

_TRANSIENT_WORDS = (
    "max retries exceeded",
    "too many 5",
    "timed out",
    "timeout",
    "connection reset",
    "connection aborted",
    "connection refused",
    "connection was closed",
    "remote end closed",
    "remotedisconnected",
    "broken pipe",
    "incompleteread",
    "incomplete read",
    "end of file",
    "transfer closed",
    "partial file",
    "failure when receiving data",
    "send failure",
    "recv failure",
    "couldn't connect",
    "could not connect",
    "empty reply",
    "slowdown",
    "slow down",
    "service unavailable",
    "internal error",
    "internalerror",
    "bad gateway",
    "throttl",
    "too many requests",
    "responsestreamingerror",
)
_TRANSIENT_STATUS = tuple(f"http response code: {code}" for code in RETRY_STATUS) + tuple(
    f"status code {code}" for code in RETRY_STATUS
)
_MISSING = ("404", "not found", "no such file", "does not exist", "nosuchkey", "nosuchbucket")
_DENIED = ("403", "access denied")
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` looks like a fault another try may cure.

    Judged by type (timeouts, connection errors) and, for the libraries that wrap every
    failure in one type (GDAL, botocore), by the message: HTTP 408/429/5xx, dropped or
    truncated transfers, throttling. Missing or denied objects are never transient.
    """
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    if is_missing(text) or any(word in text for word in _DENIED):
        return False
    return any(word in text for word in _TRANSIENT_WORDS + _TRANSIENT_STATUS)


def is_missing(message: str) -> bool:
    """True if an error message says the object is not there (404, no such file or key)."""
    text = message.lower()
    return any(word in text for word in _MISSING)


def attempts() -> int:
    """Tries of a whole operation: ``$STACRRN_RETRY_ATTEMPTS`` or :data:`ATTEMPTS`."""
    try:
        return max(1, int(os.environ.get(ATTEMPTS_ENV, ATTEMPTS)))
    except ValueError:
        return ATTEMPTS


def backoff(attempt: int) -> float:
    """Seconds to wait after failed try number ``attempt`` (1-based): full jitter, exponential."""
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)))


def retrying(
    what: str,
    fn: Callable[[], T],
    transient: Callable[[BaseException], bool] = is_transient,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient faults with backoff.

    Parameters
    ----------
    what
        What ``fn`` does, for the log and the final error (``"read item x"``).
    fn
        The whole operation; it must be safe to repeat (idempotent).
    transient
        Which exceptions deserve another try (default :func:`is_transient`).
    before_retry
        Called before every further try (e.g. to drop what a cache kept of a failed read).

    Returns
    -------
    T
        What ``fn`` returned.

    Raises
    ------
    TransientIOError
        If every try failed with a transient fault; rerunning the command resumes the run.
    Exception
        The first fault that is not transient, unchanged.
    """
    tries = attempts()
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt == tries:
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise TransientIOError(
                    f"{what} failed {tries} times ({first}); check the connection or service and run the same "
                    "command again to resume"
                ) from exc
            delay = backoff(attempt)
            log.debug("%s: try %d of %d failed (%s); again in %.2f s", what, attempt, tries, exc, delay)
            time.sleep(delay)
            if before_retry is not None:
                before_retry()
    raise AssertionError("unreachable")
