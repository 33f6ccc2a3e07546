"""Pass 2 of a STAC run, item by item: corrected COGs, block map, clear mask, then the item JSON.

Each item is one task (:func:`correct_item`) that needs only the model, the run's setup
and the output storage, so it runs the same in a thread, on a Dask worker or in a
serverless function. Its files are staged in a temporary folder of the process that runs
it, published through temporary keys, and the item JSON is written after all its assets.
The collection (:func:`write_collection`) is written last, from the published items.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from stacrrn._version import __version__
from stacrrn.core.masks import clear_from_qa
from stacrrn.core.model import RRNModel
from stacrrn.errors import StacrrnError, report
from stacrrn.io.band_choice import asset_bands, carried_keys
from stacrrn.io.cog import cog_writer
from stacrrn.io.grid import chunks
from stacrrn.io.output_keys import RUN_ASSETS, asset_file_name
from stacrrn.io.raster import read_window
from stacrrn.io.stac import BandRef, BandSelection, asset_href, band_encoding, item_href
from stacrrn.io.stac_items import COG, RasterAsset, collection_of, to_json_dict
from stacrrn.io.storage import Storage
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.stac_inputs import QaAsset
from stacrrn.pipeline.mask_products import write_clear_mask
from stacrrn.pipeline.outputs.catalog import publish_raster
from stacrrn.pipeline.outputs.manifest import RunManifest
from stacrrn.pipeline.outputs.stac_output import item_json, output_item, rrn_properties
from stacrrn.pipeline.passes.apply import ApplyResult, correct_raster, field_map, record_outputs, write_block_map
from stacrrn.pipeline.run_setup import RunSetup

log = logging.getLogger(__name__)

COLLECTION_KEY = "collection.json"


def versioned(name: str, model: RRNModel, suffix: str) -> str:
    """``<name>-<model digest><suffix>``: outputs of different models never share a key."""
    return f"{name}-{model.digest()}{suffix}"


def item_key(item_id: str) -> str:
    """Storage key of an output item."""
    return f"{item_id}/{item_id}.json"


def published_item(storage: Storage, item_id: str) -> dict[str, Any] | None:
    """The output item already published under this id, if any (and readable)."""
    d = storage.read_json(item_key(item_id))
    return d if d is not None and isinstance(d.get("assets"), dict) else None


def current_item(storage: Storage, item_id: str, digest: str) -> dict[str, Any] | None:
    """The published output item if it was made with this model, else ``None``."""
    d = published_item(storage, item_id)
    return d if d is not None and d.get("properties", {}).get("rrn:model_digest") == digest else None


@dataclass(frozen=True)
class ItemJob:
    """What pass 2 needs for every item: the run's setup, the model and where outputs go."""

    setup: RunSetup
    model: RRNModel
    storage: Storage
    model_href: str


EO_BAND_FIELDS = ("name", "common_name", "description", "center_wavelength", "full_width_half_max")


def _band_metadata(source: pystac.Asset, refs: list[BandRef]) -> list[dict[str, Any]]:
    """``eo:bands`` of a corrected asset: the source's descriptions of the bands it holds, in order.

    Read from ``eo:bands`` or STAC 1.1 ``bands`` (pystac migrates older items to the latter).
    """
    described = asset_bands(source)
    out = []
    for r in refs:
        d = described[r.index - 1] if r.index <= len(described) else {}
        fields = {k.removeprefix("eo:"): v for k, v in d.items()}  # STAC 1.1 ``bands`` say eo:common_name
        out.append({"name": r.label} | {k: v for k, v in fields.items() if k in EO_BAND_FIELDS})
    return out


PROJ_CRS_FIELDS = ("proj:code", "proj:epsg", "proj:wkt2", "proj:projjson")


def carried_asset(item: pystac.Item, key: str) -> pystac.Asset:
    """A copy of an input asset that was not normalized, its href made absolute (it stays where it is).

    An asset whose grid (``proj:shape``/``proj:transform``) relies on the item's CRS gets that
    CRS: output items describe their own assets' projections, not the input item's.
    """
    asset = item.assets[key].clone()
    asset.href = asset_href(item, key)
    fields = asset.extra_fields
    if "proj:transform" in fields and not any(f in fields for f in PROJ_CRS_FIELDS):
        fields.update({f: item.properties[f] for f in PROJ_CRS_FIELDS if item.properties.get(f) is not None})
    return asset


def _publish_clear_mask(job: ItemJob, item_id: str, qa: QaAsset, folder: Path) -> tuple[RasterAsset, float]:
    """Decode the item's quality asset on its own grid into a uint8 COG (1 clear, 0 masked, 255 no data)."""
    local = folder / versioned("clear-mask", job.model, ".tif")
    clear = 0
    with cog_writer(local, qa.info.grid, 1, "uint8", 255) as writer:
        for box in chunks(qa.info.grid, job.setup.options.execution.chunk_size):
            flags, valid = read_window(qa.info, box, [1])
            ok = clear_from_qa(qa.kind, flags[0].astype(np.int64))
            clear += int((ok & valid[0]).sum())
            writer.write(box, np.where(valid[0], ok, 255).astype(np.uint8)[None])
    percent = 100.0 * clear / max(qa.info.width * qa.info.height, 1)
    asset = publish_raster(
        job.storage,
        local,
        f"{item_id}/{local.name}",
        [{"name": "clear"}],
        ("metadata", "cloud"),
        f"clear-sky mask from {qa.key}",
    )
    return asset, percent


def correct_item(job: ItemJob, k: int) -> dict[str, Any]:
    """Correct every selected asset of item ``k``, publish them and its block map, then its item JSON.

    Parameters
    ----------
    job
        Setup, model and storage of the run.
    k
        The item's index in the run (and the model).

    Returns
    -------
    dict
        The published item's JSON.
    """
    with tempfile.TemporaryDirectory(prefix="stacrrn-item-") as tmp:
        return _correct_item_in(job, k, Path(tmp))


def _correct_item_in(job: ItemJob, k: int, folder: Path) -> dict[str, Any]:
    inputs = job.setup.inputs
    item = inputs.items[k]
    selection: BandSelection = inputs.selection
    chunk_size = job.setup.options.execution.chunk_size
    assets: dict[str, RasterAsset] = {}
    clipped = [0] * len(selection.bands)
    measured: list[tuple[list[int], dict[str, Any]]] = []
    for key, positions in selection.assets.items():
        info = inputs.assets[k][key]
        local = folder / versioned(asset_file_name(key), job.model, ".tif")
        source_bands = [selection.bands[p].index for p in positions]
        every = job.setup.options.output.fidelity_every
        result = correct_raster(job.model, k, info, local, chunk_size, positions, source_bands, every)
        for p, c in zip(positions, result.clipped, strict=True):
            clipped[p] = c
        measured.append((list(positions), result.fidelity))
        source = item.assets[key]
        bands = _band_metadata(source, [selection.bands[p] for p in positions])
        assets[key] = publish_raster(
            job.storage,
            local,
            f"{item.id}/{local.name}",
            bands,
            tuple(source.roles or ["data"]),
            source.title,
            result.statistics,
            [{k: v for k, v in band_encoding(source, i).items() if v is not None} for i in source_bands],
        )
    if job.model.local_fit is not None:
        local = write_block_map(
            folder / versioned("blockmap", job.model, ".tif"), *field_map(job.model, k), job.model.digest()
        )
        bands = [{"name": f"{b.label}_gain_field"} for b in selection.bands]
        assets["blockmap"] = publish_raster(
            job.storage,
            local,
            f"{item.id}/{local.name}",
            bands,
            ("metadata", "rrn-block-map"),
            "local gain field per block",
        )
    rrn = rrn_properties(job.model, k, selection) | {
        "rrn:assets": list(selection.assets),
        "rrn:clipped": dict(zip(selection.labels, clipped, strict=True)),
        "rrn:fidelity": item_fidelity(measured, selection.labels),
    }
    qa = inputs.qa[k] if inputs.qa else None
    if qa is not None:
        assets["clear-mask"], clear = _publish_clear_mask(job, item.id, qa, folder)
        rrn["rrn:cloud_mask"] = {"asset": qa.key, "kind": qa.kind, "clear_percent": clear}
    elif job.setup.computed_masks is not None:
        kind, unmasked, masked = job.setup.computed_masks
        product = write_clear_mask(unmasked, masked, k, folder / versioned("clear-mask", job.model, ".tif"))
        assets["clear-mask"] = publish_raster(
            job.storage,
            product.path,
            f"{item.id}/{product.path.name}",
            [{"name": "clear"}],
            ("metadata", "cloud"),
            f"clear-sky mask ({kind}) on the run's common grid",
        )
        rrn["rrn:cloud_mask"] = {"kind": kind, "clear_percent": product.usable_percent}
    out = output_item(item, item_href(item), job.setup.collection_id, assets, rrn, __version__)
    for key in carried_keys(item, selection.assets):
        if key not in out.assets and key not in RUN_ASSETS:  # the run's own assets keep their keys
            out.add_asset(key, carried_asset(item, key))
    d = item_json(out, job.storage.href(item_key(item.id)), job.model_href, job.storage.href(COLLECTION_KEY))
    previous = published_item(job.storage, item.id)
    job.storage.put_text(json.dumps(d), item_key(item.id))
    if previous is not None:  # assets of another model's item, unreferenced from now on
        keep = {a["href"] for a in d["assets"].values()}
        job.storage.delete([a["href"] for k, a in previous["assets"].items() if k != "model" and a["href"] not in keep])
    return d


def item_fidelity(measured: list[tuple[list[int], dict[str, Any]]], labels: list[str]) -> dict[str, Any]:
    """An item's ``rrn:fidelity``: each asset's per-band figures keyed by band label.

    The spectral angle needs every band of a pixel at once, so it is given only when one
    asset holds all the bands (``None`` for items with a band per asset). ``sample_every``
    says which share of the rows was measured (1: all; see
    :class:`~stacrrn.core.fidelity.FidelitySums`).
    """
    angle = measured[0][1].get("spectral_angle_deg") if len(measured) == 1 else None
    out: dict[str, Any] = {"spectral_angle_deg": angle, "sample_every": measured[0][1].get("sample_every", 1)}
    for positions, figures in measured:
        for key, values in figures.items():
            if isinstance(values, list):
                out.setdefault(key, {}).update({labels[p]: v for p, v in zip(positions, values, strict=True)})
    return out


@dataclass(frozen=True)
class ItemFailure:
    """An item pass 2 could not make (``--on-error skip``): its id and the one-line reason."""

    item_id: str
    reason: str


def correct_or_fail(job: ItemJob, k: int, skip_errors: bool) -> dict[str, Any] | ItemFailure:
    """:func:`correct_item`, or with ``skip_errors`` an :class:`ItemFailure` for a stacrrn error of the item."""
    try:
        return correct_item(job, k)
    except StacrrnError as exc:
        if not skip_errors:
            raise
        return ItemFailure(job.setup.inputs.items[k].id, report(exc).message)


def apply_items(
    job: ItemJob,
    resume: bool = True,
    workers: Workers = 1,
    progress: Progress = no_progress,
    manifest: RunManifest | None = None,
    skip_errors: bool = False,
) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """Pass 2 over every item not already published with this model.

    Parameters
    ----------
    job
        Setup, model and storage.
    resume
        Keep items already published with this model.
    workers
        Concurrent items (threads or a Dask cluster).
    progress
        Progress callback.
    manifest
        Records every item kept, published or skipped.
    skip_errors
        Leave out an item that fails with a stacrrn error (missing asset, unreadable data,
        faults that outlasted the retries) and go on; otherwise the first failure stops the run.

    Returns
    -------
    tuple
        The published items' JSON in input order, the ids of those kept from an earlier run,
        and the skipped items' ids with the reasons.
    """
    items = job.setup.inputs.items
    digest = job.model.digest()
    done: dict[int, dict[str, Any]] = {}
    for k, item in enumerate(items):
        current = current_item(job.storage, item.id, digest) if resume else None
        if current is not None:
            done[k] = current
            if manifest is not None:
                manifest.item_done(item.id, job.storage.href(item_key(item.id)), kept=True)
    reused = [items[k].id for k in sorted(done)]
    todo = [k for k in range(len(items)) if k not in done]
    skipped: dict[str, str] = {}
    progress("apply", len(done), len(items))
    results = imap_bounded(lambda k: correct_or_fail(job, k, skip_errors), todo, workers)
    for k, d in zip(todo, results, strict=True):
        if isinstance(d, ItemFailure):
            skipped[d.item_id] = d.reason
            if manifest is not None:
                manifest.item_skipped(d.item_id, d.reason)
        else:
            done[k] = d
            if manifest is not None:
                manifest.item_done(items[k].id, job.storage.href(item_key(items[k].id)))
            log.info("published item %s", items[k].id, extra={"fields": {"event": "item", "item": items[k].id}})
        progress("apply", len(done) + len(skipped), len(items))
    return [done[k] for k in sorted(done)], reused, skipped


def record_item_quality(storage: Storage, model: RRNModel, dicts: Sequence[dict[str, Any]]) -> str:
    """Store the items' pass-2 figures (clipping, fidelity, date) in the model and publish it again.

    The model's digest, and so its key, do not change: only its ``quality`` gains what
    the items measured. Returns the model's href.
    """
    results = []
    for d in dicts:
        props = d["properties"]
        labels = props["rrn:bands"]
        fidelity = props.get("rrn:fidelity", {})
        per_band = {k: [v.get(label) for label in labels] for k, v in fidelity.items() if isinstance(v, dict)}
        clipped = [props.get("rrn:clipped", {}).get(label, 0) for label in labels]
        per_band["spectral_angle_deg"] = fidelity.get("spectral_angle_deg")
        per_band["sample_every"] = fidelity.get("sample_every", 1)
        results.append(ApplyResult(d["id"], "", clipped, [], False, fidelity=per_band))
    record_outputs(model, results)
    dates = {d["id"]: d["properties"].get("datetime") or d["properties"].get("start_datetime") for d in dicts}
    for row in model.quality.get("images", []):
        if dates.get(row["name"]):
            row["datetime"] = dates[row["name"]]
    return storage.put_text(model.to_json(), versioned("stacrrn-model", model, ".json"))


def write_collection(
    storage: Storage, collection_id: str, dicts: list[dict[str, Any]], reference_href: str | None
) -> tuple[str, dict[str, Any]]:
    """Write the run's collection (last), linking every output item and the reference block map.

    Returns
    -------
    tuple
        The collection's href and JSON.
    """
    coll = collection_of(collection_id, f"Radiometrically normalized by stacrrn ({len(dicts)} items)", dicts)
    d = to_json_dict(coll, storage.href(COLLECTION_KEY))
    d["links"] += [
        {"rel": "item", "href": storage.href(item_key(it["id"])), "type": "application/geo+json"} for it in dicts
    ]
    if reference_href:
        d["assets"] = {
            "reference-blockmap": {
                "href": reference_href,
                "type": COG,
                "roles": ["metadata", "rrn-block-map"],
            }
        }
    return storage.put_text(json.dumps(d), COLLECTION_KEY), d
