"""The STAC item of a run's Zarr datacube: its dimensions, variables, model and source items.

One item describes the whole store (STAC datacube extension v2.2): the spatial dimensions on
the run's common grid, ``time`` with every image's date, the corrected bands and the model's
per-image gains and offsets. The store is its ``zarr`` asset; the model JSON its ``model``
asset; every input item a ``derived_from`` link.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pystac
from rasterio.crs import CRS

from stacrrn.core.model import RRNModel
from stacrrn.io.stac import BandSelection, item_href
from stacrrn.io.stac_items import EXTENSIONS
from stacrrn.pipeline.outputs.stac_output import RRN_PREFIX, model_quality
from stacrrn.types import Grid

DATACUBE = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
ZARR = "application/vnd+zarr"
"""Media type of a Zarr store (pystac's ``MediaType.ZARR``)."""


@dataclass(frozen=True)
class CubeLayout:
    """What a run's datacube holds: its grid, images, bands and how they are stored.

    Attributes
    ----------
    grid
        The run's common grid (``y``, ``x``).
    items
        The images along ``time``, in model order.
    times
        Each image's date (the item's ``datetime``, else its ``start_datetime``), UTC.
    selection
        The bands; each is one variable, named by its label.
    dtypes, nodata
        Each variable's data type and fill value (``None``: NaN).
    chunk
        Chunk edge in pixels along ``y`` and ``x`` (one image per chunk along ``time``).
    """

    grid: Grid
    items: Sequence[pystac.Item]
    times: Sequence[dt.datetime]
    selection: BandSelection
    dtypes: Sequence[str]
    nodata: Sequence[float | None]
    chunk: int

    @property
    def variables(self) -> list[str]:
        """The band variables, in model order."""
        return self.selection.labels


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _reference_system(crs: str) -> int | str:
    """The datacube extension's ``reference_system``: an EPSG code, else WKT2."""
    parsed = CRS.from_user_input(crs)
    epsg = parsed.to_epsg()
    return int(epsg) if epsg is not None else str(parsed.to_wkt())


def cube_dimensions(layout: CubeLayout) -> dict[str, Any]:
    """``cube:dimensions``: ``time`` (each image's date), ``y`` and ``x`` (pixel centres' extent and step)."""
    a, _, c, _, e, f = layout.grid.transform
    xs = (c + a / 2, c + a * (layout.grid.width - 0.5))
    ys = (f + e / 2, f + e * (layout.grid.height - 0.5))
    system = _reference_system(layout.grid.crs)
    times = [_iso(t) for t in layout.times]
    return {
        "time": {"type": "temporal", "extent": [min(times), max(times)], "values": times},
        "y": {"type": "spatial", "axis": "y", "extent": [min(ys), max(ys)], "step": e, "reference_system": system},
        "x": {"type": "spatial", "axis": "x", "extent": [min(xs), max(xs)], "step": a, "reference_system": system},
        "band": {"type": "bands", "values": layout.variables},
    }


def cube_variables(layout: CubeLayout) -> dict[str, Any]:
    """``cube:variables``: one data variable per band, and the model's gains and offsets per image and band."""
    out: dict[str, Any] = {
        name: {
            "dimensions": ["time", "y", "x"],
            "type": "data",
            "description": f"{name}, radiometrically normalized ({dtype})",
        }
        for name, dtype in zip(layout.variables, layout.dtypes, strict=True)
    }
    for name in ("gain", "offset"):
        out[f"rrn_{name}"] = {
            "dimensions": ["time", "band"],
            "type": "auxiliary",
            "description": f"global {name} of each image and band (gain x value + offset, then the local field)",
        }
    return out


def _bbox(items: Sequence[pystac.Item]) -> list[float]:
    boxes = [list(it.bbox) for it in items if it.bbox]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def cube_item(
    item_id: str,
    layout: CubeLayout,
    model: RRNModel,
    store_href: str,
    collection_id: str,
    software_version: str,
) -> pystac.Item:
    """The item describing a run's datacube (its ``model`` asset and links are added by the caller).

    Parameters
    ----------
    item_id
        The item's id.
    layout
        The store's grid, images and bands.
    model
        The model the images were corrected with.
    store_href
        Where the store is.
    collection_id
        The run's collection.
    software_version
        stacrrn's version for ``processing:software``.
    """
    west, south, east, north = _bbox(layout.items)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    labels = layout.variables
    times = [_iso(t) for t in layout.times]
    props: dict[str, Any] = {
        "start_datetime": min(times),
        "end_datetime": max(times),
        "processing:software": {"stacrrn": software_version},
        "processing:lineage": (
            f"Relative radiometric normalization (Yu et al. 2017 global-to-local, method {model.method}) "
            f"of {len(layout.items)} items on one grid; bands {', '.join(labels)}"
        ),
        "processing:datetime": _iso(dt.datetime.now(dt.UTC)),
        "cube:dimensions": cube_dimensions(layout),
        "cube:variables": cube_variables(layout),
        **{
            RRN_PREFIX + k: v
            for k, v in {
                "method": model.method,
                "bands": labels,
                "images": [it.id for it in layout.items],
                "references": [model.images[r].name for r in model.references],
                "model_digest": model.digest(),
                "quality": model_quality(model, labels),
            }.items()
        },
    }
    item = pystac.Item(
        item_id,
        {"type": "Polygon", "coordinates": [ring]},
        [west, south, east, north],
        None,
        props,
        collection=collection_id,
    )
    epsg = CRS.from_user_input(layout.grid.crs).to_epsg()
    projection = {
        "proj:code": f"EPSG:{epsg}" if epsg else None,
        **({} if epsg else {"proj:wkt2": layout.grid.crs}),
        "proj:shape": [layout.grid.height, layout.grid.width],
        "proj:transform": list(layout.grid.transform),
    }
    item.add_asset(
        "zarr",
        pystac.Asset(
            store_href,
            "normalized images (Zarr, consolidated metadata)",
            media_type=ZARR,
            roles=["data"],
            extra_fields=projection,
        ),
    )
    for source in layout.items:
        item.add_link(pystac.Link("derived_from", item_href(source), media_type="application/geo+json"))
    item.stac_extensions = sorted({DATACUBE, EXTENSIONS["proj"], EXTENSIONS["processing"]})
    return item
