"""The stacrrn error tree, and the one place that turns an error into what a user sees.

Every error a user can cause derives from :class:`InputError` (exit code 2). Faults of the
environment that a rerun may cure (a service that kept failing after retries, an output
prefix another run holds) derive from :class:`TemporaryError` (exit code 75, ``EX_TEMPFAIL``):
rerunning the same command resumes the run. :class:`StacrrnError` is the root of all errors
the library raises on purpose; anything else is a bug and keeps its traceback.

Every error class stacrrn defines is here (and exported by :mod:`stacrrn`). This module is
the bottom layer: it imports nothing of stacrrn but the leaf :mod:`stacrrn._redact`.

::

    StacrrnError (1)
    ├── InputError (2)
    │   ├── UnreadableRasterError
    │   │   ├── MissingAssetError
    │   │   └── ImagesUnreadableError
    │   ├── MissingCRSError
    │   ├── BandMismatchError
    │   ├── DataTypeError
    │   ├── NodataError
    │   ├── EmptyImageError
    │   ├── NoOverlapError
    │   │   └── DisconnectedError
    │   ├── OutputError
    │   ├── ParameterError
    │   │   ├── PayloadError
    │   │   └── ArgumentError (also a ValueError)
    │   └── EmptySearchError
    ├── TemporaryError (75)
    │   ├── TransientIOError
    │   └── RunLockedError
    ├── SolveError
    └── ServiceError (also a RuntimeError)
"""

from __future__ import annotations

from dataclasses import dataclass

from stacrrn._redact import redact_text


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


class ImagesUnreadableError(UnreadableRasterError):
    """Pass 1 could not read a chunk; :attr:`images` says which images fail there (index -> reason)."""

    def __init__(self, message: str, images: dict[int, str]) -> None:
        super().__init__(message)
        self.images = images

    def __reduce__(self) -> tuple[type[ImagesUnreadableError], tuple[str, dict[int, str]]]:
        return type(self), (str(self), self.images)  # Dask workers pickle it to the client


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


class ArgumentError(ParameterError, ValueError):
    """A library function got an argument value it cannot use (an unknown name, a bad number or shape).

    Raised by the numerical core (:mod:`stacrrn.core`) on values a caller passes in; also a
    :class:`ValueError`, which those functions raised before, so ``except ValueError`` still
    catches it.
    """


class EmptySearchError(InputError):
    """The search selected no item."""


class TemporaryError(StacrrnError):
    """A fault a rerun may cure; rerunning the same command resumes where this run stopped."""

    exit_code = 75


class TransientIOError(TemporaryError):
    """Reads or writes kept failing (timeouts, 5xx, dropped connections) after every retry."""


class RunLockedError(TemporaryError):
    """Another run holds the output location."""


class SolveError(StacrrnError):
    """The least-squares system could not be solved (a bug or degenerate statistics)."""


class ServiceError(StacrrnError, RuntimeError):
    """A loopback service could not be started, reached or stopped.

    This is an environment or runtime failure, not bad user input; the message carries
    the tail of the service's log when there is one.
    """


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
    (:func:`stacrrn.io.hrefs.redact_text`, defined in :mod:`stacrrn._redact`): a signed asset
    URL's token never reaches a terminal, a log or a manifest.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = redact_text(lines[0]) if lines else type(exc).__name__
    return ErrorReport(exc.exit_code, type(exc).__name__, message)
