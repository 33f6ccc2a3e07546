"""Acquisition dates of local rasters: from the file name, the raster's metadata or a sidecar file.

``stacrrn catalog`` stamps each item with its raster's date and ``stacrrn match --mode
timeseries`` orders the rasters by them; both call :func:`acquisition_dates`. Where a date
comes from, first that applies:

1. with a pattern (``--datetime-from-name %Y%m%d``): the file name, and only the file name;
   a file whose name holds no such date is an error;
2. the raster's GDAL metadata: ``ACQUISITIONDATETIME`` of the ``IMAGERY`` domain, then in
   the default domain ``ACQUISITIONDATETIME``, ``SENSING_TIME``, ``DATE_ACQUIRED`` (with
   ``SCENE_CENTER_TIME`` when present);
3. a sidecar file beside the raster: a Maxar/DigitalGlobe ``<stem>.IMD`` (``firstLineTime``,
   else ``earliestAcqTime``), or a Landsat ``<product id>_MTL.txt`` (``DATE_ACQUIRED`` and
   ``SCENE_CENTER_TIME``; ``ACQUISITION_DATE`` and ``SCENE_CENTER_SCAN_TIME`` in the
   pre-collection format) whose product id starts the raster's name (``..._T1_SR_B4.TIF``);
4. otherwise none.

GDAL's own imagery metadata readers fill the ``IMAGERY`` domain from such sidecars (and
DIMAP, RapidEye, Kompsat... files) when GDAL lists the raster's folder; it does not for remote
rasters in stacrrn's jobs (:func:`~stacrrn.io.raster.list_no_remote_folders`) nor where the user
sets ``GDAL_DISABLE_READDIR_ON_OPEN``, hence step 3.

``TIFFTAG_DATETIME`` is never used: TIFF defines it as the date and time the image was
created, which for satellite imagery is when the file was written (processed, cut, converted),
not when the scene was acquired. A wrong date orders a time series silently; no date makes
``catalog`` say so. Times without a zone are UTC; every date returned is timezone-aware.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from stacrrn.errors import ParameterError, UnreadableRasterError
from stacrrn.io.hrefs import redact_href

log = logging.getLogger(__name__)

Key = str | tuple[str, str]
"""A key holding a date-time, or a (date key, time key) pair."""

DIGITS = {"Y": 4, "y": 2, "m": 2, "d": 2, "j": 3, "H": 2, "M": 2, "S": 2}
"""strftime directives a name pattern may hold, and the digits each stands for (``%f``: 1 to 6)."""

TAG_KEYS: tuple[Key, ...] = ("ACQUISITIONDATETIME", "SENSING_TIME", ("DATE_ACQUIRED", "SCENE_CENTER_TIME"))
"""GDAL metadata items (default domain) holding an acquisition date, in the order they are tried."""

MTL_KEYS: tuple[Key, ...] = (("DATE_ACQUIRED", "SCENE_CENTER_TIME"), ("ACQUISITION_DATE", "SCENE_CENTER_SCAN_TIME"))
"""Landsat ``_MTL.txt`` keys: date and time of the scene centre (Collection 1/2, then pre-collection)."""

IMD_KEYS: tuple[Key, ...] = ("firstLineTime", "earliestAcqTime")
"""Maxar/DigitalGlobe ``.IMD`` keys: time of the first image line, then of the earliest acquisition."""


@dataclass(frozen=True)
class Acquisition:
    """When a raster was acquired and where that was read."""

    when: dt.datetime
    """Timezone-aware acquisition date-time."""
    source: str
    """Where it was read: ``file name``, ``metadata ACQUISITIONDATETIME``, ``X_MTL.txt``..."""


def name_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a strftime-style name pattern: each directive its digits, the rest literal.

    Raises
    ------
    ParameterError
        For a directive other than ``%Y %y %m %d %j %H %M %S %f %%``, or a pattern without a year.
    """
    parts: list[str] = []
    for literal, directive in re.findall(r"([^%]*)(%.?)?", pattern):
        parts.append(re.escape(literal))
        if not directive:
            continue
        code = directive[1:]
        if code == "%":
            parts.append("%")
        elif code == "f":
            parts.append(r"\d{1,6}")
        elif code in DIGITS:
            parts.append(rf"\d{{{DIGITS[code]}}}")
        else:
            supported = " ".join(f"%{c}" for c in [*DIGITS, "f", "%"])
            raise ParameterError(f"--datetime-from-name {pattern!r}: {directive!r} is not one of {supported}")
    if not re.search(r"%[Yy]", pattern.replace("%%", "")):
        raise ParameterError(f"--datetime-from-name {pattern!r} has no year: include %Y (or %y), e.g. %Y%m%d")
    return re.compile("".join(parts))


def _stem(path: str) -> str:
    return Path(path.rstrip("/")).name.rsplit(".", 1)[0]


def as_utc(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC (a naive date-time is taken as UTC)."""
    return when.astimezone(dt.UTC) if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def date_from_name(path: str | os.PathLike[str], pattern: str) -> dt.datetime:
    """The date a file name holds, found with a strftime-style pattern (``%Y%m%d``: ``Landsat_20210326.tif``).

    The pattern's directives become digit runs of their widths, searched anywhere in the file
    name without its extension; the first run that is a valid date wins (``LC08_..._20210326_20210402_...``
    gives the acquisition date, the first).

    Raises
    ------
    ParameterError
        If the pattern is malformed or the name holds no date it matches.
    """
    p = os.fspath(path)
    regex, stem = name_regex(pattern), _stem(p)
    for candidate in re.finditer(f"(?=({regex.pattern}))", stem):
        try:
            return as_utc(dt.datetime.strptime(candidate.group(1), pattern))
        except ValueError:  # digits of the right length that are no date (month 13): look further
            continue
    example = dt.datetime(2021, 3, 26, 20, 51, 37).strftime(pattern)
    raise ParameterError(
        f"{Path(p).name} does not match --datetime-from-name {pattern!r}: no date like {example!r} in {stem!r}"
    )


def _unquoted(text: str) -> str:
    return text.strip().strip("\"'").strip()


def parse_timestamp(text: str) -> dt.datetime | None:
    """An ISO-like date-time of metadata (``2021-03-26 20:51:37``, ``2021-03-26T20:51:37.1234560Z``), UTC if naive.

    ``None`` when ``text`` is no such date.
    """
    try:
        return as_utc(dt.datetime.fromisoformat(_unquoted(text)))
    except ValueError:
        return None


def _from_keys(values: Mapping[str, str], keys: Sequence[Key]) -> tuple[dt.datetime, str] | None:
    """The first of ``keys`` in ``values`` that holds a date, and the key's name."""
    for key in keys:
        day, time = (key, None) if isinstance(key, str) else key
        if day not in values:
            continue
        text = _unquoted(values[day])
        if time is not None and time in values:
            text = f"{text}T{_unquoted(values[time])}"
        when = parse_timestamp(text)
        if when is not None:
            return when, day
        log.debug("metadata %s=%r is not a date; ignored", day, values[day])
    return None


def _key_values(text: str, end: str = "") -> dict[str, str]:
    """``KEY = value`` lines of a sidecar file (``end``: a terminator to drop, ``;`` in ``.IMD``); first wins."""
    out: dict[str, str] = {}
    for key, value in re.findall(r"^\s*(\w+)\s*=\s*(.*?)\s*$", text, re.MULTILINE):
        out.setdefault(key, value.removesuffix(end).strip())
    return out


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _from_tags(path: str) -> Acquisition | None:
    try:
        with rasterio.open(path) as src:
            imagery, tags = src.tags(ns="IMAGERY"), src.tags()
    except RasterioError as exc:
        raise UnreadableRasterError(f"cannot read {redact_href(path)}: {str(exc).splitlines()[0]}") from None
    for domain, values, keys in (("IMAGERY ", imagery, TAG_KEYS[:1]), ("", tags, TAG_KEYS)):
        found = _from_keys(values, keys)
        if found is not None:
            return Acquisition(found[0], f"metadata {domain}{found[1]}")
    return None


def _sidecars(path: Path) -> list[tuple[Path, Sequence[Key], str]]:
    """Sidecar files that may hold the date of ``path``: ``.IMD`` of its stem, ``_MTL.txt`` of its name's prefixes."""
    stem = _stem(str(path))
    found: list[tuple[Path, Sequence[Key], str]] = [
        (path.with_name(stem + ext), IMD_KEYS, ";") for ext in (".IMD", ".imd")
    ]
    parts = stem.split("_")
    found += [(path.with_name("_".join(parts[:k]) + "_MTL.txt"), MTL_KEYS, "") for k in range(len(parts), 0, -1)]
    return found


def _from_sidecar(path: str) -> Acquisition | None:
    if "://" in path or path.startswith("/vsi"):
        return None
    for sidecar, keys, end in _sidecars(Path(path)):
        text = _read_text(sidecar) if sidecar.is_file() else None
        found = None if text is None else _from_keys(_key_values(text, end), keys)
        if found is not None:
            return Acquisition(found[0], f"{sidecar.name} {found[1]}")
    return None


def acquisition_date(path: str | os.PathLike[str], pattern: str | None = None) -> Acquisition | None:
    """When a raster was acquired: from its name with ``pattern``, else its metadata or a sidecar file.

    Parameters
    ----------
    path
        The raster (local path or GDAL-readable URL; sidecars are looked for beside local files only).
    pattern
        strftime-style pattern of the date in the file name (``%Y%m%d``); when given, the
        name alone decides.

    Returns
    -------
    Acquisition or None
        The date and where it was read; ``None`` when neither metadata nor a sidecar has one.

    Raises
    ------
    ParameterError
        With ``pattern``, if the name holds no date it matches.
    UnreadableRasterError
        If the raster cannot be opened to read its metadata.
    """
    p = os.fspath(path)
    if pattern is not None:
        return Acquisition(date_from_name(p, pattern), "file name")
    return _from_tags(p) or _from_sidecar(p)


def acquisition_dates(paths: Sequence[str | os.PathLike[str]], pattern: str | None = None) -> list[Acquisition | None]:
    """:func:`acquisition_date` of each raster (``pattern`` checked once, before any file is read)."""
    if pattern is not None:
        name_regex(pattern)
    return [acquisition_date(p, pattern) for p in paths]


def format_datetime(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (``2021-03-26T00:00:00Z``), as STAC items write it."""
    return as_utc(when).isoformat().replace("+00:00", "Z")


__all__ = [
    "Acquisition",
    "acquisition_date",
    "acquisition_dates",
    "as_utc",
    "date_from_name",
    "format_datetime",
    "name_regex",
    "parse_timestamp",
]
