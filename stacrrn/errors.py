"""The stacrrn error tree.

Every error a user can cause derives from :class:`InputError`; front ends map it to
exit code 2 and print its one-line message. :class:`StacrrnError` is the root of all
errors the library raises on purpose.
"""

from __future__ import annotations


class StacrrnError(Exception):
    """Base class of every error stacrrn raises on purpose."""

    exit_code = 1


class InputError(StacrrnError):
    """Bad input from the user: the message says what is wrong and how to fix it."""

    exit_code = 2


class UnreadableRasterError(InputError):
    """A raster file cannot be opened or decoded."""


class MissingCRSError(InputError):
    """A raster has no coordinate reference system."""


class BandMismatchError(InputError):
    """Inputs have different band counts or the band selection is invalid."""


class EmptyImageError(InputError):
    """An image has no valid pixel (all nodata)."""


class NoOverlapError(InputError):
    """No two inputs overlap, so there is nothing to normalize against."""


class OutputError(InputError):
    """The output location cannot be written."""


class ParameterError(InputError):
    """An option or argument value is invalid."""


class SolveError(StacrrnError):
    """The least-squares system could not be solved (a bug or degenerate statistics)."""
