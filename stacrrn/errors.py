"""The stacrrn error tree, and the one place that turns an error into what a user sees.

Every error a user can cause derives from :class:`InputError` (exit code 2). Faults of the
environment that a rerun may cure (a service that kept failing after retries, an output
prefix another run holds) derive from :class:`TemporaryError` (exit code 75, ``EX_TEMPFAIL``):
rerunning the same command resumes the run. :class:`StacrrnError` is the root of all errors
the library raises on purpose; anything else is a bug and keeps its traceback.

::

    StacrrnError (1)
    ├── InputError (2)
    │   ├── UnreadableRasterError
    │   │   └── MissingAssetError
    │   ├── MissingCRSError
    │   ├── BandMismatchError
    │   ├── DataTypeError
    │   ├── NodataError
    │   ├── EmptyImageError
    │   ├── NoOverlapError
    │   │   └── DisconnectedError
    │   ├── OutputError
    │   ├── ParameterError
    │   │   └── PayloadError
    │   └── EmptySearchError (stacrrn.io.stac)
    ├── TemporaryError (75)
    │   ├── TransientIOError
    │   └── RunLockedError
    ├── SolveError
    └── ServiceError (stacrrn.services)
"""

from __future__ import annotations

from dataclasses import dataclass

from stacrrn.io.hrefs import redact_text


class StacrrnError(Exception):
    """Base class of every error stacrrn raises on purpose."""

    exit_code = 1


class InputError(StacrrnError):
    """Bad input from the user: the message says what is wrong and how to fix it."""

    exit_code = 2


class UnreadableRasterError(InputError):
    """A raster file cannot be opened or decoded."""


class MissingAssetError(UnreadableRasterError):
    """A raster a STAC item or the command line names does not exist (404, no such file)."""


class MissingCRSError(InputError):
    """A raster has no coordinate reference system."""


class BandMismatchError(InputError):
    """Inputs have different band counts or the band selection is invalid."""


class DataTypeError(InputError):
    """A raster's data type is not supported, or inputs mix data types."""


class NodataError(InputError):
    """A nodata value cannot be represented in the band's data type."""


class EmptyImageError(InputError):
    """An image has no valid pixel (all nodata)."""


class NoOverlapError(InputError):
    """No two inputs overlap, so there is nothing to normalize against."""


class DisconnectedError(NoOverlapError):
    """The overlap graph falls apart into groups that share no reference."""


class OutputError(InputError):
    """The output location cannot be written."""


class ParameterError(InputError):
    """An option or argument value is invalid."""


class PayloadError(ParameterError):
    """A serverless event is malformed."""


class TemporaryError(StacrrnError):
    """A fault a rerun may cure; rerunning the same command resumes where this run stopped."""

    exit_code = 75


class TransientIOError(TemporaryError):
    """Reads or writes kept failing (timeouts, 5xx, dropped connections) after every retry."""


class RunLockedError(TemporaryError):
    """Another run holds the output location."""


class SolveError(StacrrnError):
    """The least-squares system could not be solved (a bug or degenerate statistics)."""


@dataclass(frozen=True)
class ErrorReport:
    """What a front end shows for an error: exit code, error name and a one-line message."""

    exit_code: int
    error: str
    message: str

    def to_dict(self) -> dict[str, object]:
        """The JSON error payload of the serverless handlers and ``--log-json``."""
        return {"error": self.error, "message": self.message, "exit_code": self.exit_code}


def report(exc: StacrrnError) -> ErrorReport:
    """The exit code, name and one-line message of ``exc``: every front end goes through here.

    A message is cut to its first line (some parsers' messages span several); an empty one
    becomes the error's name. URLs in it lose their query strings, fragments and user info
    (:func:`stacrrn.io.hrefs.redact_text`): a signed asset URL's token never reaches a
    terminal, a log or a manifest.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = redact_text(lines[0]) if lines else type(exc).__name__
    return ErrorReport(exc.exit_code, type(exc).__name__, message)
