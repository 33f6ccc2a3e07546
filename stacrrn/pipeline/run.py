"""The STAC-native job: search -> plan -> statistics -> solve -> apply -> publish.

Output layout under ``out`` (local folder or ``s3://bucket/prefix``)::

    collection.json                     the run's collection (written last)
    stacrrn-model-<digest>.json         the model (written before any item)
    stacrrn-statistics.json             pass-1 cache, keyed by the plan's fingerprint
    reference-blockmap-<digest>.tif     reference block map (local step)
    <item id>/<asset>-<digest>.tif      corrected COG per input asset (same dtype and nodata)
    <item id>/blockmap-<digest>.tif     the item's local gain field, one pixel per block
    <item id>/<item id>.json            the output item, written after its assets

``<digest>`` identifies the model. Every object goes through a temporary key first; an item
is written only after all its assets exist, and a rerun with another model writes new asset
keys, replaces the item JSON, and only then deletes the assets it superseded: a reader (or
a STAC search) never sees half an item, nor an item pointing at another model's pixels. A
run started again over the same inputs and model skips the items already written
(``resume``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from stacrrn import __version__
from stacrrn.core.local_model import LocalParams
from stacrrn.core.masks import clear_from_qa
from stacrrn.core.model import RRNModel
from stacrrn.core.statistics import Statistics
from stacrrn.errors import ParameterError
from stacrrn.io.cog import cog_writer
from stacrrn.io.grid import chunks
from stacrrn.io.raster import read_window
from stacrrn.io.stac import (
    BandRef,
    BandSelection,
    Search,
    asset_bands,
    asset_href,
    item_href,
    search_items,
    select_bands,
    sort_by_date,
)
from stacrrn.io.stac_items import COG, RasterAsset, collection_of, to_json_dict
from stacrrn.io.storage import Storage, configure_cloud
from stacrrn.pipeline.apply import correct_raster, field_map, reference_map, write_block_map
from stacrrn.pipeline.catalog import publish_raster
from stacrrn.pipeline.mask_products import write_clear_mask
from stacrrn.pipeline.match import (
    band_fallback_warning,
    check_method,
    check_statistics,
    fit_model,
    resolve_references,
)
from stacrrn.pipeline.parallel import imap_bounded
from stacrrn.pipeline.pifs import PifOptions, PifSetup
from stacrrn.pipeline.plan import DEFAULT_CHUNK, Plan
from stacrrn.pipeline.progress import Progress, no_progress
from stacrrn.pipeline.stac_inputs import CLOUD_MASKS, QaAsset, StacInputs, open_assets, spectral_bands
from stacrrn.pipeline.stac_output import item_json, output_item, rrn_properties
from stacrrn.pipeline.stac_plan import make_stac_plan, pair_graph
from stacrrn.pipeline.statistics import STATISTICS_FILE, compute_statistics

COLLECTION_KEY = "collection.json"

COMPUTED_MASKS = ("spectral", "s2cloudless")
"""Cloud masks computed from the pixels (published on the common grid) rather than decoded from QA assets."""


def versioned(name: str, model: RRNModel, suffix: str) -> str:
    """``<name>-<model digest><suffix>``: outputs of different models never share a key."""
    return f"{name}-{model.digest()}{suffix}"


@dataclass
class RunResult:
    """Outcome of :func:`run`."""

    model: RRNModel
    items: list[dict[str, Any]]
    collection_href: str
    model_href: str
    out: str
    reused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    statistics_reused: bool = False
    published: str | None = None


def item_key(item_id: str) -> str:
    """Storage key of an output item."""
    return f"{item_id}/{item_id}.json"


def _statistics(
    plan: Plan, storage: Storage, workers: int, resume: bool, progress: Progress, warnings: list[str]
) -> tuple[Statistics, bool]:
    """Pass-1 statistics, from the storage's cache when resuming and the plan's fingerprint matches."""
    fingerprint = plan.fingerprint()
    text = storage.read_text(STATISTICS_FILE) if resume else None
    if text:
        try:
            cached = json.loads(text)
            if cached.get("fingerprint") == fingerprint:
                return Statistics.from_dict(cached["statistics"]), True
        except (ValueError, KeyError):
            pass
    stats = compute_statistics(plan, workers, progress, warnings)
    storage.put_text(json.dumps({"fingerprint": fingerprint, "statistics": stats.to_dict()}), STATISTICS_FILE)
    return stats, False


def _same_place(href: str) -> str:
    """Normal form of an href, so that a local path and its file:// or relative spelling compare equal."""
    if "://" in href and not href.startswith("file://"):
        return href
    return os.path.normpath(os.path.abspath(href.removeprefix("file://")))


def check_not_inputs(storage: Storage, items: Sequence[pystac.Item], search: Search | None) -> None:
    """Refuse an output location where the run's item JSON or collection would replace an input.

    Raises
    ------
    ParameterError
        If an output key is an input item, asset or the searched catalog.
    """
    outputs = {_same_place(storage.href(item_key(it.id))) for it in items} | {_same_place(storage.href(COLLECTION_KEY))}
    sources = [item_href(it) for it in items] + [asset_href(it, k) for it in items for k in it.assets]
    if search is not None and search.catalog:
        sources.append(search.catalog)
    for src in sources:
        if _same_place(src) in outputs:
            raise ParameterError(f"--out {storage.url} would overwrite the input {src}; choose another output location")


def _published_item(storage: Storage, item_id: str) -> dict[str, Any] | None:
    """The output item already published under this id, if any (and readable)."""
    text = storage.read_text(item_key(item_id))
    if not text:
        return None
    try:
        d = json.loads(text)
    except ValueError:
        return None
    return d if isinstance(d, dict) and isinstance(d.get("assets"), dict) else None


def _current_item(storage: Storage, item_id: str, digest: str) -> dict[str, Any] | None:
    """The published output item if it was made with this model, else ``None``."""
    d = _published_item(storage, item_id)
    return d if d is not None and d.get("properties", {}).get("rrn:model_digest") == digest else None


@dataclass(frozen=True)
class _Job:
    """What pass 2 needs for every item."""

    inputs: StacInputs
    model: RRNModel
    storage: Storage
    collection_id: str
    model_href: str
    chunk_size: int
    staging: Path
    computed_masks: tuple[str, Plan, Plan] | None = None
    """Cloud test, unmasked and masked plans, when the masks are computed rather than decoded."""


EO_BAND_FIELDS = ("name", "common_name", "description", "center_wavelength", "full_width_half_max")


def _band_metadata(source: pystac.Asset, refs: list[BandRef]) -> list[dict[str, Any]]:
    """``eo:bands`` of a corrected asset: the source's descriptions of the bands it holds, in order."""
    described = asset_bands(source)
    out = []
    for r in refs:
        d = described[r.index - 1] if r.index <= len(described) else {}
        out.append({"name": r.label} | {k: v for k, v in d.items() if k in EO_BAND_FIELDS})
    return out


def _publish_clear_mask(job: _Job, item_id: str, qa: QaAsset, folder: Path) -> tuple[RasterAsset, float]:
    """Decode the item's quality asset on its own grid into a uint8 COG (1 clear, 0 masked, 255 no data)."""
    local = folder / versioned("clear-mask", job.model, ".tif")
    clear = 0
    with cog_writer(local, qa.info.grid, 1, "uint8", 255) as writer:
        for box in chunks(qa.info.grid, job.chunk_size):
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


def _correct_item(job: _Job, k: int) -> dict[str, Any]:
    """Correct every selected asset of item ``k``, write its block map, then its item JSON."""
    item = job.inputs.items[k]
    selection: BandSelection = job.inputs.selection
    folder = job.staging / item.id
    folder.mkdir(parents=True, exist_ok=True)
    assets: dict[str, RasterAsset] = {}
    clipped = [0] * len(selection.bands)
    for key, positions in selection.assets.items():
        info = job.inputs.assets[k][key]
        local = folder / versioned(key, job.model, ".tif")
        result = correct_raster(
            job.model, k, info, local, job.chunk_size, positions, [selection.bands[p].index for p in positions]
        )
        for p, c in zip(positions, result.clipped, strict=True):
            clipped[p] = c
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
    rrn = rrn_properties(job.model, k, selection) | {"rrn:clipped": dict(zip(selection.labels, clipped, strict=True))}
    qa = job.inputs.qa[k] if job.inputs.qa else None
    if qa is not None:
        assets["clear-mask"], clear = _publish_clear_mask(job, item.id, qa, folder)
        rrn["rrn:cloud_mask"] = {"asset": qa.key, "kind": qa.kind, "clear_percent": clear}
    elif job.computed_masks is not None:
        kind, unmasked, masked = job.computed_masks
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
    out = output_item(item, item_href(item), job.collection_id, assets, rrn, __version__)
    d = item_json(out, job.storage.href(item_key(item.id)), job.model_href, job.storage.href(COLLECTION_KEY))
    previous = _published_item(job.storage, item.id)
    job.storage.put_text(json.dumps(d), item_key(item.id))
    if previous is not None:  # assets of another model's item, unreferenced from now on
        keep = {a["href"] for a in d["assets"].values()}
        job.storage.delete([a["href"] for k, a in previous["assets"].items() if k != "model" and a["href"] not in keep])
    return d


def _apply_items(job: _Job, resume: bool, workers: int, progress: Progress) -> tuple[list[dict[str, Any]], list[str]]:
    """Pass 2 over every item not already published with this model.

    Returns
    -------
    tuple
        The output items' JSON in input order, and the ids of those kept from an earlier run.
    """
    items = job.inputs.items
    digest = job.model.digest()
    done: dict[int, dict[str, Any]] = {}
    for k, item in enumerate(items):
        current = _current_item(job.storage, item.id, digest) if resume else None
        if current is not None:
            done[k] = current
    reused = [items[k].id for k in sorted(done)]
    todo = [k for k in range(len(items)) if k not in done]
    progress("apply", len(done), len(items))
    for k, d in zip(todo, imap_bounded(lambda k: _correct_item(job, k), todo, workers), strict=True):
        done[k] = d
        progress("apply", len(done), len(items))
    return [done[k] for k in range(len(items))], reused


def _write_collection(
    storage: Storage,
    collection_id: str,
    items: list[pystac.Item],
    dicts: list[dict[str, Any]],
    reference_href: str | None,
) -> tuple[str, dict[str, Any]]:
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


def run(
    search: Search | Sequence[pystac.Item],
    out: str,
    *,
    assets: Sequence[str] | None = None,
    mode: str = "mosaic",
    neighbours: int | None = None,
    star: bool = False,
    references: Sequence[str] | None = None,
    method: str = "global+local",
    block_size: float | None = None,
    n_blocks: int | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    workers: int = 2,
    min_overlap: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    collection_id: str | None = None,
    publish: str | None = None,
    resume: bool = True,
    cloud_mask: str = "auto",
    reflectance: tuple[float, float] | None = None,
    pif: PifOptions | None = None,
    estimator: str = "spread",
    local_params: LocalParams | None = None,
    progress: Progress = no_progress,
) -> RunResult:
    """Normalize the scenes a STAC search selects and publish corrected COGs and items.

    Parameters
    ----------
    search
        A :class:`~stacrrn.io.stac.Search` (STAC API, static catalog or item files), or items.
    out
        Output location: a folder or ``s3://bucket/prefix``.
    assets
        Bands to normalize: asset keys, ``asset.N`` or ``eo:common_name`` values
        (default: every band of every raster data asset).
    mode, neighbours
        ``mosaic`` (adjacent scenes) or ``timeseries`` (one place, many dates; each date
        paired with its ``neighbours`` nearest dates, default all pairs).
    star
        Time series: also (or only) pair every date with each reference date.
    references
        Item ids held fixed (default: all items' central tendency).
    method
        ``global``, ``local`` or ``global+local``.
    block_size, n_blocks, crs, resolution
        Block grid and common grid (see :func:`stacrrn.match`).
    workers
        Concurrent chunks in pass 1 and items in pass 2.
    min_overlap
        Overlaps with fewer valid pixels are ignored.
    chunk_size
        Chunk edge in pixels.
    collection_id
        Id of the output collection (default ``<first input collection>-rrn``).
    publish
        STAC API URL (transactions extension) to add the collection and items to.
    resume
        Reuse cached statistics and items already written with the same model.
    cloud_mask
        ``auto`` (the items' quality assets, Landsat ``qa_pixel`` / Sentinel-2 ``scl``, when
        every item has one), ``qa`` (required) or ``none``. Masks restrict the statistics
        (pass 1) and are published as each item's ``clear-mask`` asset; output pixels are
        corrected everywhere. ``spectral`` runs a cloud test on the bands themselves (needs
        blue and red, and reflectance: ``reflectance=(scale, offset)`` or the bands'
        ``raster:bands`` scale/offset); ``s2cloudless`` runs Sentinel Hub's detector on the
        10 bands of Sentinel-2 L1C items (optional extra). Computed masks are published on
        the common grid.
    reflectance
        ``(scale, offset)`` from values to reflectance for the spectral cloud test and NDVI PIFs.
    pif
        Pseudo-invariant feature selection and holdout (:class:`~stacrrn.pipeline.pifs.PifOptions`).
    estimator
        Relative gain estimator of the global step: ``spread`` or ``orthogonal``.
    local_params
        Weights of the local solve.
    progress
        Progress callback ``(stage, done, total)``.

    Returns
    -------
    RunResult
        The model, the output items (as JSON dicts), hrefs and warnings.
    """
    check_method(method, estimator)
    if workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    star_check = ([0] if references else []) if star else None
    pair_graph(2, mode, neighbours, star_check)  # validate --mode, --neighbours and --star before any request
    if cloud_mask not in CLOUD_MASKS:
        raise ParameterError(f"unknown --cloud-mask {cloud_mask!r}; choose one of {', '.join(CLOUD_MASKS)}")
    configure_cloud()
    items = search_items(search) if isinstance(search, Search) else sort_by_date(search)
    select_bands(items, assets)  # fail on unknown band names before touching the output
    storage = Storage(out)
    check_not_inputs(storage, items, search if isinstance(search, Search) else None)
    storage.check_writable()
    inputs = open_assets(items, assets, 2 * workers, cloud_mask)
    selection = inputs.selection
    plan = make_stac_plan(
        inputs, crs, resolution, block_size, n_blocks, chunk_size, mode, neighbours, cloud_mask, reflectance
    )
    computed_masks = None
    if cloud_mask in COMPUTED_MASKS:
        grid_options = (crs, resolution, block_size, n_blocks, chunk_size, mode, neighbours)
        computed_masks = (cloud_mask, make_stac_plan(inputs, *grid_options, cloud_mask="none"), plan)
    if pif is not None:
        setup = PifSetup(pif, spectral_bands(inputs, reflectance))
        setup.check()
        plan = replace(plan, pif=setup)
    refs = resolve_references(plan, references)
    if star:
        plan = replace(plan, pairs=pair_graph(len(plan.names), mode, neighbours, refs))
    warnings: list[str] = []
    try:
        stats, reused_stats = _statistics(plan, storage, workers, resume, progress, warnings)
        warnings += check_statistics(stats, plan, min_overlap, selection.labels)
        model = fit_model(plan, stats, method, refs, min_overlap, local_params, estimator)
        warnings += band_fallback_warning(model, selection.labels)
        model_href = storage.put_text(model.to_json(), versioned("stacrrn-model", model, ".json"))
        reference_href = None
        with tempfile.TemporaryDirectory(prefix="stacrrn-") as tmp:
            if model.local_fit is not None:
                ref_key = versioned("reference-blockmap", model, ".tif")
                ref_path = write_block_map(Path(tmp) / ref_key, *reference_map(model, stats), model.digest())
                reference_href = storage.put_file(ref_path, ref_key)
            job = _Job(
                inputs,
                model,
                storage,
                collection_id or _default_collection(items),
                model_href,
                chunk_size,
                Path(tmp),
                computed_masks,
            )
            dicts, reused = _apply_items(job, resume, workers, progress)
        collection_href, coll = _write_collection(storage, job.collection_id, items, dicts, reference_href)
    finally:
        storage.cleanup()
    published = None
    if publish:
        from stacrrn.pipeline.publish import publish_items

        published = publish_items(publish, coll, dicts)
    return RunResult(model, dicts, collection_href, model_href, storage.url, reused, warnings, reused_stats, published)


def _default_collection(items: Sequence[pystac.Item]) -> str:
    return f"{items[0].collection_id or 'stacrrn'}-rrn"
