"""The STAC metadata of a run's outputs: one item per input item, a collection for the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pystac

from stacrrn.core.model import RRNModel
from stacrrn.io.stac import BandSelection
from stacrrn.io.stac_items import EXTENSIONS, RasterAsset, asset_of, footprint_geometry, to_json_dict

RRN_PREFIX = "rrn:"


def _per_band(values: np.ndarray[Any, Any], labels: list[str]) -> dict[str, float]:
    return {label: float(v) for label, v in zip(labels, values, strict=True)}


def model_quality(model: RRNModel, labels: list[str]) -> dict[str, Any]:
    """Run-level overlap consistency per band, before and after (area-weighted RMS of differences).

    With the pixel pass, also the pixelwise overlap RMSE and MAE of the whole model (``pixel_rmse``,
    ``pixel_mae``).
    """
    out: dict[str, Any] = {}
    for stage in ("before", "after"):
        q = model.quality.get(stage, {})
        out[stage] = {
            key: dict(zip(labels, q[key], strict=True))
            for key in ("mean_diff", "std_diff", "rmse", "block_mean_diff")
            if key in q
        }
        pixels = model.quality.get("overlap_pixels", {}).get(stage, {})
        out[stage] |= {
            f"pixel_{key}": dict(zip(labels, pixels[key], strict=True)) for key in ("rmse", "mae") if key in pixels
        }
    return out


def rrn_properties(model: RRNModel, i: int, selection: BandSelection) -> dict[str, Any]:
    """The ``rrn:`` block of image ``i``: model parameters, references, block grid and quality."""
    labels = selection.labels
    g = model.global_fit
    local = model.local_fit
    props: dict[str, Any] = {
        "method": model.method,
        "bands": labels,
        "gain": _per_band(g.gains[i], labels),
        "offset": _per_band(g.offsets[i], labels),
        "references": [model.images[r].name for r in model.references],
        "is_reference": i in model.references,
        "model_digest": model.digest(),
        "quality": model_quality(model, labels),
    }
    if local is not None:
        field = local.fields[i]
        props["local"] = {
            "bands": [labels[model.bands.index(b)] for b in model.quality.get("local_bands", [])],
            "shift": _per_band(local.shifts[i], labels),
            "field_min": _per_band(field.reshape(field.shape[0], -1).min(axis=1), labels),
            "field_max": _per_band(field.reshape(field.shape[0], -1).max(axis=1), labels),
            **model.quality.get("settings", {}).get("local", {}),
        }
        table = model.quality.get("local_validation")
        if table:  # this image's held-out overlap errors and the decision, per band
            keys = ("heldout_blocks", "global_error", "local_error", "kept")
            props["local"]["heldout"] = {
                labels[k]: {key: band["images"][i][key] for key in keys} for k, band in enumerate(table["bands"])
            }
        props["block_grid"] = local.blocks.to_dict() | {"crs": model.grid.crs, "transform": list(model.grid.transform)}
    settings = model.quality.get("settings", {})
    if settings.get("pif"):
        props["pif"] = settings["pif"]
    name = model.images[i].name
    validation = next((v for v in model.quality.get("holdout", []) if v["image"] == name), None)
    if validation is not None:
        props["validation"] = validation | {"bands": [_labelled(b, labels) for b in validation["bands"]]}
    return {RRN_PREFIX + k: v for k, v in props.items()}


def _labelled(row: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    return row | {"band": labels[row["band"] - 1]}


def output_item(
    source: pystac.Item,
    source_href: str,
    collection_id: str,
    assets: Mapping[str, RasterAsset],
    rrn: dict[str, Any],
    software_version: str,
) -> pystac.Item:
    """The item describing one corrected input.

    Parameters
    ----------
    source
        The input item (its geometry, datetime and properties are carried over).
    source_href
        Where the input item lives (``derived_from`` link).
    collection_id
        The run's collection.
    assets
        Corrected data COGs, the block map and the model JSON (already written).
    rrn
        The ``rrn:`` properties (:func:`rrn_properties`) plus per-item extras.
    software_version
        stacrrn's version for ``processing:software``.
    """
    props = {
        k: v
        for k, v in source.properties.items()
        if not k.startswith(("proj:", "processing:", RRN_PREFIX)) and k not in ("created", "updated")
    }
    props |= {
        "processing:software": {"stacrrn": software_version},
        "processing:lineage": (
            f"Relative radiometric normalization (Yu et al. 2017 global-to-local, method {rrn['rrn:method']}) "
            f"of {source.id}; bands {', '.join(rrn['rrn:bands'])}"
        ),
        "processing:datetime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        **rrn,
    }
    if source.geometry and source.bbox:
        geometry, bbox = source.geometry, list(source.bbox)
    else:  # an input item without a footprint gets its first asset's
        geometry, bbox = footprint_geometry(next(iter(assets.values())).info)
    item = pystac.Item(source.id, geometry, bbox, source.datetime, props, collection=collection_id)
    if source.datetime is None:
        item.common_metadata.start_datetime = source.common_metadata.start_datetime
        item.common_metadata.end_datetime = source.common_metadata.end_datetime
    for key, spec in assets.items():
        item.add_asset(key, asset_of(spec))
    item.add_link(pystac.Link("derived_from", source_href, media_type="application/geo+json"))
    # the source's other extensions stay declared (their fields are carried over); ours in our versions
    ours = [url.split("/v")[0] for url in EXTENSIONS.values()]
    kept = [url for url in source.stac_extensions if not url.startswith(tuple(ours))]
    item.stac_extensions = sorted({*kept, *EXTENSIONS.values()})
    return item


def model_asset(href: str) -> pystac.Asset:
    """The run's model JSON as an item asset."""
    return pystac.Asset(href, "stacrrn model", media_type="application/json", roles=["metadata"])


def item_json(item: pystac.Item, href: str, model_href: str, collection_href: str) -> dict[str, Any]:
    """JSON of an output item with its model asset, collection and self links."""
    item.add_asset("model", model_asset(model_href))
    return to_json_dict(item, href, collection_href)
