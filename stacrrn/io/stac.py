"""STAC input: search an API, a static catalog or item files; choose bands; resolve asset hrefs.

Everything here deals in :class:`pystac.Item`; pixels are read elsewhere (odc-stac for the
common grid, rasterio for an asset's own grid).

What a STAC API, a catalog or an item file says is untrusted input: whatever it holds ends
in one :class:`~stacrrn.errors.InputError` line (never a traceback, never a recursion through
a catalog whose links form a cycle); messages show hrefs through
:func:`~stacrrn.io.hrefs.redact_href`; and items read from a remote source may not point
stacrrn at files of this machine unless :attr:`Search.allow_local_hrefs` says so.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pystac
import pystac.stac_io
from pystac.utils import make_absolute_href, str_to_datetime

from stacrrn.errors import EmptySearchError as EmptySearchError  # defined with the error tree; importable here too
from stacrrn.errors import InputError, ParameterError, StacrrnError, TransientIOError
from stacrrn.io.band_choice import (
    asset_bands,
    choose_assets,
    common_name,
    default_asset_keys,
    is_categorical,
    key_stem,
)
from stacrrn.io.files import absolute_path
from stacrrn.io.hrefs import is_local_href, reads_this_machine, redact_href, redact_text
from stacrrn.io.retry import NETWORK_TIMEOUT, RETRY_STATUS, is_transient

QUERY_OPERATORS = {">=": "gte", "<=": "lte", "!=": "neq", "=": "eq", "<": "lt", ">": "gt"}
"""``--query`` comparison operators and their STAC API query-extension names (longest first)."""

COMMON_NAMES = frozenset(
    {"pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge", "rededge071", "rededge075"}
    | {"rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"}
)
"""``eo:common_name`` values of the eo extension."""


@dataclass(frozen=True)
class Search:
    """Where to look for items and which ones to take.

    Exactly one of ``stac`` (a STAC API URL), ``catalog`` (a static catalog/collection
    JSON, path or URL) or ``item_files`` (item / ItemCollection JSON files) is the source.

    Items read from a remote source (a STAC API, or a catalog or item file read over
    ``http(s)://`` or from ``s3://``) may only point at remote assets, catalogs and items
    (``http(s)://``, ``s3://``): a local path, ``file://`` URL or GDAL ``/vsi...`` path in
    them is refused unless ``allow_local_hrefs``. Local catalogs and item files may point
    anywhere.
    """

    stac: str | None = None
    catalog: str | None = None
    item_files: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    query: tuple[str, ...] = ()
    filter: str | None = None
    ids: tuple[str, ...] = ()
    max_items: int | None = None
    timeout: float = NETWORK_TIMEOUT
    """Seconds to wait for a STAC API or a catalog file over HTTP before another try."""
    allow_local_hrefs: bool = False
    """Let items from a remote source point at local files, ``file://`` URLs and GDAL ``/vsi...`` paths."""

    def describe(self) -> str:
        """One line naming the source, for messages (URLs without their query strings)."""
        return (
            redact_href(self.stac or "")
            or redact_href(self.catalog or "")
            or (", ".join(map(redact_href, self.item_files)) or "(no source)")
        )


@dataclass(frozen=True)
class BandRef:
    """One band to normalize: its label, the asset holding it, and its 1-based index there."""

    label: str
    asset: str
    index: int

    @property
    def odc_name(self) -> str:
        """The name odc-stac gives this band (``asset`` or ``asset.index`` for multi-band assets)."""
        return f"{self.asset}.{self.index}"


@dataclass(frozen=True)
class BandSelection:
    """The bands chosen, identical for every item, grouped by asset."""

    bands: list[BandRef]
    assets: dict[str, list[int]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Band labels in model order."""
        return [b.label for b in self.bands]

    @classmethod
    def of(cls, bands: Sequence[BandRef]) -> BandSelection:
        """The selection of ``bands``, in this order."""
        assets: dict[str, list[int]] = {}
        for pos, ref in enumerate(bands):
            assets.setdefault(ref.asset, []).append(pos)
        return cls(list(bands), assets)


def parse_query(expressions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``prop<op>value`` strings (e.g. ``eo:cloud_cover<20``) into a query-extension dict.

    Raises
    ------
    ParameterError
        If an expression has no operator.
    """
    out: dict[str, dict[str, Any]] = {}
    for expr in expressions:
        for op, name in QUERY_OPERATORS.items():
            if op in expr:
                prop, raw = (s.strip() for s in expr.split(op, 1))
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw
                out.setdefault(prop, {})[name] = value
                break
        else:
            raise ParameterError(f"--query {expr!r} has no comparison; write it like 'eo:cloud_cover<20'")
    return out


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``west,south,east,north`` in degrees.

    Raises
    ------
    ParameterError
        If it is not four numbers with west < east and south < north within lon/lat ranges.
    """
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"--bbox {text!r} must be four numbers: west,south,east,north (degrees)") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise ParameterError(f"--bbox {text!r} is not west<east, south<north within -180..180, -90..90")
    return w, s, e, n


def _period(text: str) -> tuple[dt.datetime, dt.datetime]:
    """First and last instant of ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or an RFC 3339 date-time."""
    if len(text) in (4, 7) and text.replace("-", "").isdigit():
        year, month = int(text[:4]), int(text[5:7]) if len(text) == 7 else None
        start = dt.datetime(year, month or 1, 1)
        after = dt.datetime(year + 1, 1, 1) if month in (None, 12) else dt.datetime(year, (month or 0) + 1, 1)
        return start, after - dt.timedelta(microseconds=1)
    when = str_to_datetime(text)
    if len(text) == 10:  # a bare date is the whole day
        return when, when + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return when, when


def _parse_interval(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Start and end of a ``--datetime`` value (as STAC APIs read it: ``2024`` is the whole year)."""
    parts = text.split("/") if "/" in text else [text, text]
    try:
        start, end = (None if p in ("", "..") else _period(p) for p in parts)
    except ValueError:
        raise ParameterError(
            f"--datetime {text!r} is not an RFC 3339 date/time or interval (e.g. 2024-06-01/2024-06-30)"
        ) from None
    return _aware(start[0] if start else None), _aware(end[1] if end else None)


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    """Dates without a time zone are UTC (as in STAC)."""
    return when.replace(tzinfo=dt.UTC) if when is not None and when.tzinfo is None else when


def _filter_arg(text: str | None) -> tuple[dict[str, Any] | str | None, str | None]:
    if text is None:
        return None, None
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text), "cql2-json"
        except ValueError as exc:
            raise ParameterError(f"--filter is not valid CQL2 JSON: {exc}") from None
    return text, "cql2-text"


def _search_api(search: Search) -> list[pystac.Item]:
    import pystac_client
    import requests
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    flt, lang = _filter_arg(search.filter)
    query = parse_query(search.query) or None
    url = redact_href(search.stac or "")
    retry = Retry(
        total=5,
        connect=1,
        backoff_factor=0.3,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # searches by POST are reads too
        raise_on_status=True,
    )
    try:
        stac_io = StacApiIO(max_retries=retry)
        # Client.open sets the I/O's timeout to its own argument (None unless given)
        client = pystac_client.Client.open(search.stac or "", stac_io=stac_io, timeout=search.timeout)
        result = client.search(
            collections=list(search.collections) or None,
            bbox=search.bbox,
            datetime=search.datetime,
            query=query,
            filter=flt,
            filter_lang=lang,
            ids=list(search.ids) or None,
            max_items=search.max_items,
            method="GET" if lang == "cql2-text" else "POST",
        )
        items = list(result.items())
    except StacrrnError:
        raise
    except (APIError, requests.RequestException, OSError) as exc:  # the service, or the way there
        first = _first_line(exc)
        text = first.lower()
        if "new connection" not in text and ("max retries exceeded" in text or is_transient(exc)):
            raise TransientIOError(
                f"the STAC API {url} kept failing ({first[:200]}); run the same command again later"
            ) from None
        raise InputError(f"the STAC API {url} did not answer the search: {first[:200]}") from None
    except Exception as exc:  # what the API answered is not STAC (a landing page `[]` or `null`, junk features...)
        raise InputError(
            f"the STAC API {url} did not answer the search with STAC stacrrn can use "
            f"({type(exc).__name__}: {_first_line(exc)[:200]}); check that the URL is the API's landing page"
        ) from None
    for item in items:
        check_item(item, search.describe())
    if not search.allow_local_hrefs:
        refuse_local_hrefs(items, search.describe())
    return items


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when empty), URLs redacted."""
    lines = str(exc).strip().splitlines()
    return redact_text(lines[0].strip()) if lines else type(exc).__name__


def refuse_local_hrefs(items: Iterable[pystac.Item], where: str, base: str | None = None) -> None:
    """Refuse items from a remote source whose assets point at this machine.

    An asset href written as a local path, ``file://`` URL or GDAL ``/vsi...`` path, or one
    that resolved against the item's location is not an ``http(s)://`` or ``s3://`` URL
    (:func:`~stacrrn.io.hrefs.reads_this_machine`), would make stacrrn open a file of this
    machine on behalf of whoever published the items. Checked before anything is opened;
    hrefs that are not strings are left to :func:`check_item`. Relative hrefs resolve against
    ``base`` when given (the ItemCollection file the items came in), else against each item's
    own location.

    Raises
    ------
    InputError
        For the first such asset, naming the item, the asset and ``--allow-local-hrefs``.
    """
    for item in items:
        for key, asset in item.assets.items():
            if not isinstance(asset.href, str):
                continue
            resolved = make_absolute_href(asset.href, base) if base else asset_href(item, key)
            if reads_this_machine(asset.href, resolved):
                shown = asset.href if not is_local_href(resolved) else resolved
                raise InputError(
                    f"item {item.id!r:.80} of {where}: asset {key!r:.80} points at {redact_href(shown)!r:.160} "
                    "on this machine, but the item was read from a remote source; refused "
                    "(pass --allow-local-hrefs if you trust the source)"
                )


def check_item(item: pystac.Item, where: str) -> None:
    """Check the fields stacrrn reads from an item parsed from user input (pystac checks few types).

    Raises
    ------
    InputError
        If the id is not a printable string, the date cannot be parsed, the bbox is not 4 or 6 numbers,
        or an asset's ``href``, ``type`` or ``roles`` has the wrong type.
    """
    problem = None
    try:
        start = item.datetime or item.common_metadata.start_datetime
    except (ValueError, TypeError, OverflowError):
        start = None
    bbox = item.bbox
    if not isinstance(item.id, str) or not item.id or not item.id.isprintable():
        problem = "its id is not a non-empty string of printable characters"
    elif start is None:
        problem = "its datetime (or start_datetime) is not an RFC 3339 date-time"
    elif bbox is not None and not (
        isinstance(bbox, list)
        and len(bbox) in (4, 6)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and -math.inf < v < math.inf for v in bbox)
    ):
        problem = "its bbox is not a list of 4 (or 6) numbers"
    for key, asset in item.assets.items():
        if problem:
            break
        roles = asset.roles
        if not isinstance(asset.href, str) or not asset.href:
            problem = f"asset {key!r} has no href string"
        elif not isinstance(asset.media_type, str | None):
            problem = f"asset {key!r} has a 'type' that is not a media type string"
        elif roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            problem = f"asset {key!r} has 'roles' that are not a list of strings"
    if problem:
        raise InputError(f"item {item.id!r:.80} of {where}: {problem}; fix the item JSON")


def _matches(item: pystac.Item, search: Search) -> bool:
    """Local filtering of a static catalog's items by collection, ids, bbox and datetime."""
    if search.collections and item.collection_id not in search.collections:
        return False
    if search.ids and item.id not in search.ids:
        return False
    if search.bbox is not None and item.bbox is not None:
        w, s, e, n = search.bbox
        if item.bbox[0] > e or item.bbox[2] < w or item.bbox[1] > n or item.bbox[3] < s:
            return False
    if search.datetime is not None:
        start, end = _parse_interval(search.datetime)
        when = _aware(item.datetime or str_to_datetime(item.properties.get("start_datetime", "1970-01-01T00:00:00Z")))
        assert when is not None
        if (start and when < start) or (end and when > end):
            return False
    return True


class FsspecStacIO(pystac.stac_io.DefaultStacIO):
    """pystac I/O that also reads and writes ``s3://`` (through fsspec/s3fs), and reads HTTP with a timeout.

    HTTP reads retry on connection faults, timeouts and 408/429/5xx answers, each try waiting at
    most ``timeout`` seconds for the server: a server that accepts and never answers cannot hang
    a run.
    """

    def __init__(self, timeout: float = NETWORK_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def read_text_from_href(self, href: str) -> str:
        """Read ``href`` (``s3://`` through fsspec, ``http(s)://`` with retries and a timeout, files as pystac)."""
        if href.startswith("s3://"):
            import fsspec

            with fsspec.open(href, "rt") as f:
                return str(f.read())
        if href.startswith(("http://", "https://")):
            return _http_text(href, self.timeout)
        return str(super().read_text_from_href(href))

    def write_text_to_href(self, href: str, txt: str) -> None:
        """Write ``href`` (``s3://`` through fsspec, anything else as pystac does)."""
        if href.startswith("s3://"):
            import fsspec

            with fsspec.open(href, "wt") as f:
                f.write(txt)
            return
        super().write_text_to_href(href, txt)


def _http_text(href: str, timeout: float) -> str:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3 import Retry

    retry = Retry(total=4, backoff_factor=0.3, status_forcelist=RETRY_STATUS, raise_on_status=True)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        response = session.get(href, timeout=timeout)
        response.raise_for_status()
        return response.text


MAX_CATALOG_DEPTH = 100
"""Deepest chain of child catalogs followed from the root (real catalogs nest a few levels)."""


def _is_remote(href: str) -> bool:
    return not is_local_href(href)


def _catalog_items(href: str, io: FsspecStacIO, allow_local: bool) -> list[pystac.Item]:
    """The items of the catalog or collection at ``href`` and of all catalogs below it.

    Walks the child links without recursion, each catalog once: a catalog reached again along
    another path is not read twice, and a child link back to a catalog on the way from the
    root (a cycle, which would make pystac recurse until Python's limit) is refused. In a
    catalog read from a remote source, child and item links to this machine are refused unless
    ``allow_local``.

    Raises
    ------
    InputError
        If the root is not a catalog or collection, the links form a cycle, nest deeper than
        :data:`MAX_CATALOG_DEPTH`, or (without ``allow_local``) lead from a remote catalog to a
        local file.
    """
    root = pystac.read_file(href, stac_io=io)
    if not isinstance(root, pystac.Catalog):
        raise InputError(
            f"{redact_href(href)} is a STAC {type(root).__name__}, not a catalog or collection; "
            "pass item files as arguments instead of --catalog"
        )
    start = root.get_self_href() or href
    seen = {start}
    stack: list[tuple[pystac.Catalog, tuple[str, ...]]] = [(root, (start,))]
    items: list[pystac.Item] = []
    while stack:
        catalog, path = stack.pop()
        remote = _is_remote(path[-1])
        links = [link for link in catalog.links if link.rel in (pystac.RelType.CHILD, pystac.RelType.ITEM)]
        children: list[tuple[pystac.Catalog, tuple[str, ...]]] = []
        for link in links:
            written = link.href
            target = link.get_absolute_href() or written
            if remote and not allow_local and reads_this_machine(written, target):
                raise InputError(
                    f"the catalog {redact_href(path[-1])} (read from a remote source) links to "
                    f"{redact_href(written)!r:.160} on this machine; refused (pass --allow-local-hrefs if you "
                    "trust the source)"
                )
            if link.rel == pystac.RelType.ITEM:
                continue
            if target in path:
                raise InputError(
                    f"the catalog {redact_href(start)} has a cycle: {redact_href(path[-1])} links to "
                    f"{redact_href(target)} as a child, which is already on the way from the root; "
                    "fix the catalog's child links"
                )
            if target in seen:
                continue
            if len(path) >= MAX_CATALOG_DEPTH:
                raise InputError(
                    f"the catalog {redact_href(start)} nests child catalogs more than {MAX_CATALOG_DEPTH} levels "
                    f"deep (at {redact_href(target)}); point --catalog at a catalog further down"
                )
            seen.add(target)
            link.resolve_stac_object(root=root)
            child = link.target
            if not isinstance(child, pystac.Catalog):
                raise InputError(
                    f"{redact_href(path[-1])} links to {redact_href(target)} as a child, but it is a STAC "
                    f"{type(child).__name__}, not a catalog or collection; fix the catalog"
                )
            children.append((child, (*path, target)))
        items.extend(catalog.get_items(recursive=False))
        stack.extend(reversed(children))  # depth first, in link order
    return items


def _read_static(search: Search) -> list[pystac.Item]:
    if search.query or search.filter:
        raise ParameterError(
            "--query and --filter need a STAC API (--stac URL); a static catalog is filtered only by "
            "--collection, --ids, --bbox and --datetime"
        )
    items: list[pystac.Item] = []
    untrusted: list[pystac.Item] = []  # items read from a remote source
    io = FsspecStacIO(search.timeout)
    try:
        if search.catalog:
            items = _catalog_items(search.catalog, io, search.allow_local_hrefs)
            untrusted = [
                it for it in items if _is_remote(search.catalog) or _is_remote(it.get_self_href() or search.catalog)
            ]
        for given in search.item_files:
            path = absolute_path(given)  # relative hrefs resolve against where the file is, not the root
            obj = json.loads(io.read_text(path))
            if obj.get("type") == "FeatureCollection":
                found = pystac.ItemCollection.from_dict(obj, preserve_dict=False).items
                if _is_remote(path) and not search.allow_local_hrefs:  # before the hrefs are resolved
                    refuse_local_hrefs(found, search.describe(), base=path)
                for item in found:
                    for asset in item.assets.values():  # relative hrefs are relative to the file
                        asset.href = make_absolute_href(asset.href, path)
            else:
                found = [pystac.Item.from_dict(obj)]
                found[0].set_self_href(path)
            items += found
            untrusted += found if _is_remote(path) else []
    except StacrrnError:
        raise
    except Exception as exc:  # the edge where user files meet parsers: any failure is unusable input
        first = _first_line(exc)[:200]
        if is_transient(exc) and "new connection" not in first.lower():  # nothing listening there: bad input
            raise TransientIOError(
                f"reading STAC items from {search.describe()} kept failing ({type(exc).__name__}: {first}); "
                "run the same command again later"
            ) from None
        raise InputError(f"cannot read STAC items from {search.describe()}: {type(exc).__name__}: {first}") from None
    for item in items:
        check_item(item, search.describe())
    if not search.allow_local_hrefs:
        refuse_local_hrefs(untrusted, search.describe())
    items = [it for it in items if _matches(it, search)]
    return items[: search.max_items] if search.max_items else items


def search_items(search: Search) -> list[pystac.Item]:
    """Run the search; return the items sorted by datetime, then id.

    Raises
    ------
    ParameterError
        If no source, or more than one, is given.
    EmptySearchError
        If nothing matched.
    InputError
        If the API cannot be reached or the files cannot be read.
    """
    sources = [bool(search.stac), bool(search.catalog), bool(search.item_files)]
    if sum(sources) != 1:
        raise ParameterError("give exactly one source: --stac URL, --catalog PATH_OR_URL or item JSON files")
    if search.datetime:
        _parse_interval(search.datetime)  # fail on a malformed interval before any request
    items = _search_api(search) if search.stac else _read_static(search)
    if not items:
        raise EmptySearchError(
            f"the search of {search.describe()} selected no item; widen --bbox/--datetime or check --collection"
        )
    return sort_by_date(items)


def sort_by_date(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """Items by datetime (``start_datetime`` for ranges; naive times are UTC), then id."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def when(it: pystac.Item) -> dt.datetime:
        start = it.datetime or it.common_metadata.start_datetime
        return _aware(start) or epoch

    return sorted(items, key=lambda it: (when(it), it.id))


ENCODING_FIELDS = ("scale", "offset", "unit", "spatial_resolution")
"""``raster:bands`` fields that say what a band's values mean; STAC 1.1 ``bands`` prefix them with ``raster:``."""


def band_encoding(asset: pystac.Asset, index: int) -> dict[str, Any]:
    """The ``scale``, ``offset``, ``unit`` and ``spatial_resolution`` of band ``index`` (1-based), as given.

    Read from ``raster:bands`` (raster extension 1.x) or STAC 1.1 ``bands`` (``raster:scale``...).
    """
    out: dict[str, Any] = {}
    for key, prefix in (("bands", "raster:"), ("raster:bands", "")):
        bands = asset.extra_fields.get(key)
        band = bands[index - 1] if isinstance(bands, list) and index <= len(bands) else None
        if isinstance(band, dict):
            for name in ENCODING_FIELDS:
                for field_name in (prefix + name, name) if name == "unit" else (prefix + name,):
                    if field_name in band:
                        out.setdefault(name, band[field_name])
    return out


def band_scaling(asset: pystac.Asset, index: int) -> tuple[float, float] | None:
    """``(scale, offset)`` of band ``index`` (1-based) from its encoding, or ``None`` if neither is given.

    Raises
    ------
    InputError
        If the scale or offset is not a finite number.
    """
    band = band_encoding(asset, index)
    if "scale" not in band and "offset" not in band:
        return None
    try:
        scale, offset = float(band.get("scale", 1.0)), float(band.get("offset", 0.0))
    except (TypeError, ValueError, OverflowError):
        scale = offset = math.nan
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise InputError(
            f"asset {redact_href(asset.href)}: raster:bands scale {band.get('scale')!r:.40} or offset "
            f"{band.get('offset')!r:.40} of band {index} is not a number; fix the item JSON"
        )
    return scale, offset


def _ref_name(ref: BandRef, item: pystac.Item) -> str:
    """``key`` of a single-band asset, ``key.N`` of a band in a multi-band one."""
    return ref.asset if len(asset_bands(item.assets[ref.asset])) == 1 else f"{ref.asset}.{ref.index}"


def _by_band_name(item: pystac.Item, name: str) -> list[BandRef]:
    """Bands of ``item`` whose ``name`` (else common name) is ``name``: spectral and thermal assets first."""
    choices = choose_assets(item)
    pools = [
        [c.key for c in choices if c.kind in ("spectral", "thermal")],
        [c.key for c in choices if c.kind in ("auxiliary", "undescribed")],
    ]
    for keys in pools:
        for field_of in (lambda b: b.get("name"), common_name):
            found = [
                BandRef(name, key, k)
                for key in keys
                for k, band in enumerate(asset_bands(item.assets[key]), start=1)
                if field_of(band) == name
            ]
            if found:
                return found
    return []


def _resolve(item: pystac.Item, name: str, counts: dict[str, int]) -> list[BandRef]:
    assets = item.assets
    key, _, index = name.partition(".") if name not in assets else (name, "", "")
    if key in assets:
        if is_categorical(key, assets[key]):
            raise ParameterError(
                f"--assets {name!r}: asset {key!r} of item {item.id} holds class codes or quality bits, "
                "which are never normalized (they are carried over unchanged)"
            )
        n = len(asset_bands(assets[key], counts.get(key)))
        if index:
            if not index.isdigit() or not 1 <= int(index) <= n:
                raise ParameterError(f"--assets {name!r}: asset {key!r} of item {item.id} has {n} band(s)")
            return [BandRef(name, key, int(index))]
        return [BandRef(key, key, 1)] if n == 1 else [BandRef(f"{key}.{k}", key, k) for k in range(1, n + 1)]
    found = _by_band_name(item, name)
    if len(found) > 1:
        raise ParameterError(
            f"--assets {name!r} matches {', '.join(_ref_name(r, item) for r in found)} of item {item.id}: name one"
        )
    if found:
        return found
    spectral = default_asset_keys(item)
    raise ParameterError(
        f"--assets {name!r} is neither an asset key nor a band name of item {item.id}; "
        f"its spectral assets are {', '.join(spectral) or 'none'}"
    )


def select_bands(
    items: Sequence[pystac.Item], names: Sequence[str] | None = None, counts: dict[str, int] | None = None
) -> BandSelection:
    """Resolve band names (asset keys, ``asset.N``, band names or common names) identically on every item.

    Parameters
    ----------
    items
        The searched items.
    names
        Bands to normalize; default every band of the first item's spectral reflectance assets
        (:func:`~stacrrn.io.band_choice.choose_assets`).
    counts
        Band count per asset key from the files' headers, for assets whose STAC metadata
        describes no bands.

    Raises
    ------
    ParameterError
        If a name resolves on no asset, on several bands, to a categorical asset, or to
        different assets on different items.
    InputError
        If no name is given and the first item has no spectral asset.
    """
    if not names:
        names = default_asset_keys(items[0])
        if not names:
            why = "; ".join(f"{c.key}: {c.reason}" for c in choose_assets(items[0]))
            raise InputError(
                f"item {items[0].id} has no spectral reflectance asset to normalize ({why[:300]}); "
                "choose bands with --assets"
            )
    counts = counts or {}
    bands = [ref for name in names for ref in _resolve(items[0], name, counts)]
    for item in items[1:]:
        other = [ref for name in names for ref in _resolve(item, name, counts)]
        if [(b.asset, b.index) for b in other] != [(b.asset, b.index) for b in bands]:
            raise ParameterError(
                f"--assets resolves differently on {item.id} than on {items[0].id}; name the assets by key"
            )
    if len({(b.asset, b.index) for b in bands}) != len(bands):
        raise ParameterError("--assets names the same band twice")
    return BandSelection.of(bands)


def gdal_path(href: str) -> str:
    """GDAL path of an asset href: ``s3://`` -> ``/vsis3/``, ``http(s)://`` -> ``/vsicurl/``."""
    if href.startswith("s3://"):
        return "/vsis3/" + href[5:]
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    return href.removeprefix("file://")


def asset_href(item: pystac.Item, key: str) -> str:
    """Absolute href of an item's asset (relative hrefs resolved against the item's location)."""
    href = item.assets[key].get_absolute_href()
    return href or item.assets[key].href


def item_href(item: pystac.Item) -> str:
    """Where the item lives (its self href), or its id when it was built in memory."""
    return item.get_self_href() or item.id


QA_KINDS = ("qa_pixel", "scl")
"""Quality assets recognised by key (case-insensitive, without a ``.TIF`` or ``-jp2`` suffix): Landsat C2
``qa_pixel``, Sentinel-2 ``scl``."""


def find_qa_asset(item: pystac.Item) -> tuple[str, str] | None:
    """The item's quality asset as ``(asset key, kind)``, or ``None``."""
    for key in item.assets:
        if key_stem(key) in QA_KINDS:
            return key, key_stem(key)
    return None


def stac_items_of(source: object) -> list[pystac.Item] | None:
    """The items of a :class:`Search` or an item list (sorted by date); ``None`` for anything else (local paths)."""
    if isinstance(source, Search):
        return search_items(source)
    if isinstance(source, Sequence) and source and isinstance(source[0], pystac.Item):
        return sort_by_date(list(source))
    return None
