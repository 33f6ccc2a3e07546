"""What the CLI tells a person or a batch system: log levels, JSON log lines, progress events.

``stacrrn -v ...`` shows the pipeline's log messages (``-vv`` also debug ones) through
rich on stderr. ``stacrrn --log-json ...`` writes one JSON object per line on stderr
instead, for batch systems: every log record, progress events (at most one per stage and
second, and the last one), warnings and the error that ended a run. Tables still go to
stdout unless ``--quiet``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

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
    handler: logging.Handler
    if log_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False)
    log.handlers = [handler]
    log.setLevel(level)
    log.propagate = False


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
