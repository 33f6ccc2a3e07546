"""What the CLI tells a person or a batch system: log levels, JSON log lines, progress events.

``stacrrn -v ...`` shows the pipeline's log messages (``-vv`` also debug ones) through
rich on stderr. ``stacrrn --log-json ...`` writes one JSON object per line on stderr
instead, for batch systems: every log record, progress events (at most one per stage and
second, and the last one), warnings and the error that ended a run. Tables still go to
stdout unless ``--quiet``.

Libraries' own output goes to the log too, never raw to stderr: Python warnings (rasterio's
``NotGeoreferencedWarning``, pystac-client's warnings about what an API returned) and GDAL and
PROJ messages are log records (loggers ``py.warnings``, ``gdal``, ``rasterio...``) shown with
``-v`` or ``--log-json`` and dropped otherwise (:func:`library_output`), so that bad input
prints exactly one ``error:`` line. Every record's URLs lose their query strings
(:func:`stacrrn.io.hrefs.redact_text`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.logging import RichHandler

from stacrrn.io.hrefs import redact_text

LOGGER = "stacrrn"

log = logging.getLogger(LOGGER)


@dataclass
class OutputMode:
    """The process-wide choices of the ``stacrrn`` callback."""

    verbose: int = 0
    log_json: bool = False


OUTPUT = OutputMode()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as a JSON line."""
        d: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        d |= getattr(record, "fields", {})
        if record.exc_info and record.levelno >= logging.ERROR:
            d["exception"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


class RedactFilter(logging.Filter):
    """Drop the query strings, fragments and user info of URLs in a record's message (signed URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; keep every record."""
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class LibraryFilter(RedactFilter):
    """A library's record on one line (PROJ messages carry whole JSON documents), redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Collapse the message's whitespace, then redact it."""
        record.msg, record.args = " ".join(record.getMessage().split()), None
        return super().filter(record)


def _handler(log_json: bool) -> logging.Handler:
    """A handler writing to the current stderr: JSON lines, or rich text."""
    handler: logging.Handler
    if log_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False)
    return handler


def configure_logging(verbose: int, log_json: bool) -> None:
    """Send the ``stacrrn`` loggers to stderr: JSON lines, or rich text at the chosen level.

    Parameters
    ----------
    verbose
        0: warnings and errors, 1: also info, 2 or more: also debug.
    log_json
        JSON lines (info and above at least) instead of rich text.
    """
    OUTPUT.verbose, OUTPUT.log_json = verbose, log_json
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 or log_json else logging.WARNING
    handler = _handler(log_json)
    handler.addFilter(RedactFilter())
    log.handlers = [handler]
    log.setLevel(level)
    log.propagate = False


WARNINGS_LOGGER = "py.warnings"
"""Logger of Python warnings while a command runs (the name :func:`logging.captureWarnings` uses)."""


def log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A :func:`warnings.showwarning` that logs the warning as one record instead of printing it.

    The record says the warning's class and message (``NotGeoreferencedWarning: Dataset has no
    geotransform...``); where it was raised goes to the record's ``fields`` (JSON logs).
    """
    fields = {"category": category.__name__, "source": f"{filename}:{lineno}"}
    logging.getLogger(WARNINGS_LOGGER).warning("%s: %s", category.__name__, message, extra={"fields": fields})


@contextmanager
def library_output() -> Iterator[None]:
    """While a command runs, send library warnings and GDAL/PROJ messages to the log, not to stderr.

    * Python warnings: :func:`warnings.catch_warnings` with :func:`log_warning` as
      ``showwarning`` (the warning filters stay as they are; both are restored afterwards);
    * GDAL and PROJ messages: :func:`stacrrn.io.raster.gdal_messages_logged` (rasterio's own
      handler logs them where a ``rasterio.Env`` is active);
    * a handler on the root logger for library loggers: the log's format with ``-v`` or
      ``--log-json`` (warnings and above), else a sink, so that Python's last-resort handler
      does not print them either.
    """
    handler: logging.Handler
    if OUTPUT.verbose or OUTPUT.log_json:
        handler = _handler(OUTPUT.log_json)
        handler.setLevel(logging.WARNING)
        handler.addFilter(LibraryFilter())
    else:
        handler = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        from stacrrn.io.raster import gdal_messages_logged  # rasterio only once a command runs

        with warnings.catch_warnings(), gdal_messages_logged():
            warnings.showwarning = log_warning
            yield
    finally:
        root.removeHandler(handler)


class JsonProgress:
    """A progress callback that logs ``progress`` events: the first, then at most one per second, and the last."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Log ``done`` of ``total`` for ``stage`` unless one was logged less than ``interval`` ago."""
        now = time.monotonic()
        if done < total and now - self.last.get(stage, -1e9) < self.interval:
            return
        self.last[stage] = now
        fields = {"event": "progress", "stage": stage, "done": done, "total": total}
        log.info("%s %d/%d", stage, done, total, extra={"fields": fields})
