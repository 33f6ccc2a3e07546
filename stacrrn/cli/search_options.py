"""STAC search options shared by the commands that take a search (``search``, ``run``, ``clouds``, ``pif``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from stacrrn.errors import ParameterError
from stacrrn.io.retry import NETWORK_TIMEOUT

if TYPE_CHECKING:
    from stacrrn.io.stac import Search

StacUrl = Annotated[
    str | None, typer.Option("--stac", metavar="URL", help="STAC API URL to search.", rich_help_panel="Search")
]
Catalog = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        metavar="PATH|URL",
        help="Static catalog or collection JSON (path or URL).",
        rich_help_panel="Search",
    ),
]
ItemFiles = Annotated[
    list[str] | None,
    typer.Argument(help="Item or ItemCollection JSON files (instead of a search).", show_default=False),
]
Collections = Annotated[
    list[str] | None,
    typer.Option("--collection", "-c", metavar="ID", help="Collection id; repeatable.", rich_help_panel="Search"),
]
Bbox = Annotated[
    str | None, typer.Option(metavar="W,S,E,N", help="west,south,east,north in degrees.", rich_help_panel="Search")
]
Datetime = Annotated[
    str | None,
    typer.Option(
        "--datetime",
        metavar="DATE[/DATE]",
        help="RFC 3339 date or interval, e.g. 2024-06-01/2024-06-30.",
        rich_help_panel="Search",
    ),
]
Query = Annotated[
    list[str] | None,
    typer.Option(
        metavar="PROPERTY<OP>VALUE",
        help="Property comparison like 'eo:cloud_cover<20'; repeatable (STAC API query extension).",
        rich_help_panel="Search",
    ),
]
Filter = Annotated[
    str | None,
    typer.Option(
        "--filter",
        metavar="CQL2",
        help="CQL2 filter, text or JSON (STAC API filter extension).",
        rich_help_panel="Search",
    ),
]
Ids = Annotated[
    list[str] | None, typer.Option("--id", metavar="ID", help="Item id; repeatable.", rich_help_panel="Search")
]
MaxItems = Annotated[
    int | None, typer.Option(metavar="N", help="Take at most this many items.", rich_help_panel="Search")
]
Timeout = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        help="Seconds to wait for the STAC API or a catalog over HTTP before another try (then exit 75).",
        rich_help_panel="Search",
    ),
]
AllowLocalHrefs = Annotated[
    bool,
    typer.Option(
        "--allow-local-hrefs",
        help="Let items from a remote STAC API, catalog or item file point at local paths, file:// URLs or GDAL "
        "/vsi... paths (refused by default: a remote source must not make stacrrn read files of this machine). "
        "Local catalogs and item files may always point anywhere.",
        rich_help_panel="Search",
    ),
]


def make_search(
    stac: str | None,
    catalog: str | None,
    item_files: list[str] | None,
    collection: list[str] | None,
    bbox: str | None,
    datetime: str | None,
    query: list[str] | None,
    filter_: str | None,
    ids: list[str] | None,
    max_items: int | None,
    timeout: float = NETWORK_TIMEOUT,
    allow_local_hrefs: bool = False,
) -> Search:
    """Build a :class:`Search` from command-line options (validating bbox, max items and timeout)."""
    from stacrrn.io.stac import Search, parse_bbox

    if max_items is not None and max_items < 1:
        raise ParameterError(f"--max-items must be at least 1, got {max_items}")
    if not 0 < timeout < math.inf:
        raise ParameterError(f"--timeout must be a positive number of seconds, got {timeout}")
    return Search(
        stac=stac,
        catalog=catalog,
        item_files=tuple(item_files or ()),
        collections=tuple(collection or ()),
        bbox=parse_bbox(bbox) if bbox else None,
        datetime=datetime,
        query=tuple(query or ()),
        filter=filter_,
        ids=tuple(ids or ()),
        max_items=max_items,
        timeout=timeout,
        allow_local_hrefs=allow_local_hrefs,
    )
