"""Which images pass 1 pairs: the pair graph of a mosaic or a time series, and the dates that order one.

A STAC run orders its items by their datetime; a local job (``stacrrn match --mode
timeseries``) orders its rasters by their acquisition dates
(:func:`~stacrrn.io.acquisition.acquisition_dates`), or keeps the order given when they
have none. Either way :func:`pair_graph` then pairs the dates, and the warnings here say when
the dates cannot be trusted to mean what a time series assumes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence

from stacrrn.errors import ParameterError
from stacrrn.io.acquisition import as_utc, format_datetime
from stacrrn.options import MODES

SHOWN = 5
"""Names listed in a warning before the rest are counted."""


def pair_graph(
    n: int, mode: str, neighbours: int | None, star: Sequence[int] | None = None
) -> frozenset[tuple[int, int]] | None:
    """The pair graph: every overlapping pair, each date with its nearest dates, and/or a star.

    A mosaic, or a time series without ``neighbours`` or ``star``, uses every overlapping
    pair (``None``). A long time series (items sorted by date) pairs each date with its
    ``neighbours`` nearest dates on either side, and/or (``star``: reference indices) with
    every reference date, so the cost grows linearly with the number of dates.

    Raises
    ------
    ParameterError
        For an unknown mode, fewer than one neighbour, or a star without references or
        outside a time series.
    """
    if mode not in MODES:
        raise ParameterError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
    if neighbours is not None and neighbours < 1:
        raise ParameterError(f"--neighbours must be at least 1, got {neighbours}")
    if star is not None and (mode != "timeseries" or not star):
        raise ParameterError("--star pairs each date with the reference dates: use --mode timeseries and --reference")
    if mode == "mosaic" or (star is None and (neighbours is None or neighbours >= n - 1)):
        return None
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + (neighbours or 0) + 1))}
    pairs |= {(min(i, r), max(i, r)) for r in star or [] for i in range(n) if i != r}
    return frozenset(pairs)


def date_order(dates: Sequence[dt.datetime | None]) -> list[int]:
    """Indices of the images in time order: by date when every one has a date (ties keep their order), else as given."""
    known = [as_utc(d) for d in dates if d is not None]
    if len(known) < len(dates):
        return list(range(len(dates)))
    return sorted(range(len(known)), key=lambda k: (known[k], k))


def _listed(names: Sequence[str]) -> str:
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def undated_warning(names: Sequence[str], dates: Sequence[dt.datetime | None], neighbours: int | None) -> list[str]:
    """A warning when a local time series cannot be put in date order (empty when it can, or need not be).

    Some inputs without a date: the order given is kept. None with a date: said only when
    ``neighbours`` makes the order matter (every pair is the same set in any order).
    """
    missing = [name for name, when in zip(names, dates, strict=True) if when is None]
    if not missing:
        return []
    if len(missing) < len(names):
        return [
            f"no acquisition date for {len(missing)} of {len(names)} inputs ({_listed(missing)}): the time series "
            "keeps the order given; give every input a date with --datetime-from-name PATTERN (e.g. %Y%m%d)"
        ]
    if neighbours is None or neighbours >= len(names) - 1:
        return []
    return [
        "no acquisition date for any input (no --datetime-from-name, no date in the files' metadata): "
        "--neighbours pairs the dates in the order given"
    ]


def repeated_dates_warning(dates: Sequence[dt.datetime | None], what: str = "items") -> list[str]:
    """One warning when two or more images of a time series share a date-time (empty when none do).

    A time series pairs its images as different dates; images that share a date-time are
    usually tiles of one pass (a mosaic), or items that were all stamped with one date
    (``stacrrn catalog`` without dates). ``None`` dates are not compared.

    Parameters
    ----------
    dates
        Each image's date-time, in any order (naive ones are UTC).
    what
        What the images are called in the message (``items``, ``inputs``).

    Returns
    -------
    list of str
        One line naming each repeated date-time and how many images share it, or nothing.
    """
    counts = Counter(format_datetime(d) for d in dates if d is not None)
    repeated = [(when, k) for when, k in sorted(counts.items()) if k > 1]
    if not repeated:
        return []
    shared = ", ".join(f"{k} {what} share {when}" for when, k in repeated[:SHOWN])
    more = f" (and {len(repeated) - SHOWN} more dates)" if len(repeated) > SHOWN else ""
    return [
        f"time series with repeated dates: {shared}{more}; they are paired as different dates "
        "(if they are one date, e.g. tiles of one pass, use --mode mosaic)"
    ]


__all__ = ["date_order", "pair_graph", "repeated_dates_warning", "undated_warning"]
