"""The STAC-native job: search -> plan -> statistics -> solve -> apply -> publish.

Output layout under ``out`` (local folder or ``s3://bucket/prefix``)::

    collection.json                     the run's collection (written last)
    stacrrn-manifest.json               what the run finished, kept and skipped, and its status
    stacrrn.lock                        held while a run writes here (see stacrrn.io.lock)
    stacrrn-model-<digest>.json         the model (written before any item)
    stacrrn-statistics.npz              pass-1 cache, keyed by the plan's fingerprint
    reference-blockmap-<digest>.tif     reference block map (local step)
    <item id>/<asset>-<digest>.tif      corrected COG per input asset (same dtype and nodata)
    <item id>/blockmap-<digest>.tif     the item's local gain field, one pixel per block
    <item id>/<item id>.json            the output item, written after its assets

``<digest>`` identifies the model. Every object goes through a temporary key first; an item
is written only after all its assets exist, and a rerun with another model writes new asset
keys, replaces the item JSON, and only then deletes the assets it superseded: a reader (or
a STAC search) never sees half an item, nor an item pointing at another model's pixels. A
run started again over the same inputs and model skips the items already written
(``resume``). One run at a time writes to an output location: a second one stops with
:class:`~stacrrn.errors.RunLockedError` before writing anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pystac

from stacrrn.core.model import RRNModel
from stacrrn.core.statistics import Statistics
from stacrrn.errors import ImagesUnreadableError, InputError, ParameterError, StacrrnError, report
from stacrrn.io.hrefs import redact_text
from stacrrn.io.lock import OutputLock
from stacrrn.io.output_keys import check_output_keys
from stacrrn.io.stac import Search, asset_href, item_href, search_items, select_bands, sort_by_date
from stacrrn.io.statistics_file import statistics_from_bytes, statistics_to_bytes
from stacrrn.io.storage import Storage, configure_cloud
from stacrrn.options import RunOptions
from stacrrn.pipeline.cube_outputs import cube_id, write_cube
from stacrrn.pipeline.execution.parallel import Workers, check_workers, threads_of
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.pairs import repeated_dates_warning
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.pipeline.item_outputs import (
    COLLECTION_KEY,
    ItemJob,
    apply_items,
    item_key,
    record_item_quality,
    versioned,
    write_collection,
)
from stacrrn.pipeline.outputs.manifest import RunManifest
from stacrrn.pipeline.passes.apply import reference_map, write_block_map
from stacrrn.pipeline.passes.overlap_metrics import pixel_rise_warnings, record_overlap_pixels
from stacrrn.pipeline.passes.solve import (
    check_statistics,
    fit_model,
    log_model,
    unfitted_band_warning,
)
from stacrrn.pipeline.passes.statistics import STATISTICS_FILE, compute_statistics
from stacrrn.pipeline.run_setup import RunSetup, check_run_options, collection_id_of, prepare

log = logging.getLogger(__name__)


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
    skipped: dict[str, str] = field(default_factory=dict)


def skip_warnings(skipped: dict[str, str]) -> list[str]:
    """One warning per skipped item: ``skipped item <id>: <reason>``."""
    return [f"skipped item {item_id}: {reason}" for item_id, reason in skipped.items()]


def _cached_statistics(plan: Plan, storage: Storage) -> Statistics | None:
    """Pass-1 statistics an earlier run over the same plan (same fingerprint) left, if any (damaged: none)."""
    return statistics_from_bytes(storage.read_bytes(STATISTICS_FILE), plan.fingerprint())


def _save_statistics(plan: Plan, storage: Storage, stats: Statistics) -> None:
    storage.put_bytes(statistics_to_bytes(stats, plan.fingerprint()), STATISTICS_FILE)


def _same_place(href: str) -> str:
    """Normal form of an href, so that a local path and its file:// or relative spelling compare equal."""
    if "://" in href and not href.startswith("file://"):
        return href
    return os.path.normpath(os.path.abspath(href.removeprefix("file://")))


def check_not_inputs(
    storage: Storage, items: Sequence[pystac.Item], search: Search | None, output_ids: Sequence[str]
) -> None:
    """Refuse an output location where the run's item JSON or collection would replace an input.

    ``output_ids`` are the ids of the items the run writes.

    Raises
    ------
    ParameterError
        If an output key is an input item, asset or the searched catalog.
    """
    outputs = {_same_place(storage.href(item_key(i))) for i in output_ids} | {_same_place(storage.href(COLLECTION_KEY))}
    sources = [item_href(it) for it in items] + [asset_href(it, k) for it in items for k in it.assets]
    if search is not None and search.catalog:
        sources.append(search.catalog)
    for src in sources:
        if _same_place(src) in outputs:
            raise ParameterError(f"--out {storage.url} would overwrite the input {src}; choose another output location")


def run(
    search: Search | Sequence[pystac.Item],
    out: str,
    options: RunOptions | None = None,
    *,
    workers: Workers | None = None,
    progress: Progress = no_progress,
    **values: Any,
) -> RunResult:
    """Normalize the scenes a STAC search selects and publish corrected COGs and items.

    Parameters
    ----------
    search
        A :class:`~stacrrn.io.stac.Search` (STAC API, static catalog or item files), or items.
    out
        Output location: a folder or ``s3://bucket/prefix``.
    options
        The run's options (:class:`~stacrrn.options.RunOptions`: inputs, model, masks,
        output, execution; each field documented there). Default: every default.
    workers
        Threads (a number) or a Dask client for the pixel passes (default
        ``options.execution.workers``).
    progress
        Progress callback ``(stage, done, total)``.
    **values
        Options by flat name (``method="global"``, ``assets=["red", "nir"]``), applied
        on top of ``options`` (:data:`~stacrrn.options.OPTION_FIELDS` lists them).

    Returns
    -------
    RunResult
        The model, the output items (as JSON dicts), hrefs and warnings.
    """
    o = (options or RunOptions()).updated(**values)
    check_run_options(o)
    workers = o.execution.workers if workers is None else workers
    check_workers(workers)
    skip = o.output.on_error == "skip"
    configure_cloud()
    items = search_items(search) if isinstance(search, Search) else sort_by_date(search)
    log.info("%d items to normalize, outputs to %s", len(items), out, extra={"fields": {"items": len(items)}})
    # fail on unknown band names and ids that cannot name outputs before touching the output
    check_output_keys([it.id for it in items], select_bands(items, o.inputs.assets).assets)
    storage = Storage(out)
    outputs = [cube_id(collection_id_of(items, o.output.collection_id))] if o.output.format == "zarr" else None
    check_not_inputs(storage, items, search if isinstance(search, Search) else None, outputs or [it.id for it in items])
    storage.check_writable()
    setup = prepare(items, o, 2 * threads_of(workers), skip)
    warnings: list[str] = []
    cached = _cached_statistics(setup.plan, storage) if o.execution.resume else None
    if cached is None:
        setup, stats = _first_pass(setup, items, skip, workers, progress, warnings)
    else:
        stats = cached
    warnings[:0] = skip_warnings(setup.inputs.skipped) + list(setup.inputs.left_out.values())
    warnings += usable_statistics(setup, stats)  # before anything is written
    try:
        with OutputLock(storage):
            if stale := storage.remove_stale_temporaries():
                log.info("removed temporary objects of interrupted run(s) %s", ", ".join(stale))
            manifest = RunManifest.begin(storage, [it.id for it in items], setup.inputs.skipped)
            try:
                result, collection = _publish_run(
                    setup, stats, cached, storage, manifest, skip, workers, progress, warnings
                )
            except BaseException as exc:
                with contextlib.suppress(Exception):  # the run's own error matters more than the manifest's
                    manifest.finish("failed", failure_reason(exc))
                raise
            manifest.finish("complete")
    finally:
        storage.cleanup()
    if o.output.publish:
        from stacrrn.pipeline.outputs.publish import publish_items

        result.published = publish_items(o.output.publish, collection, result.items, progress)
    return result


def _first_pass(
    setup: RunSetup,
    items: Sequence[pystac.Item],
    skip: bool,
    workers: Workers,
    progress: Progress,
    warnings: list[str],
) -> tuple[RunSetup, Statistics]:
    """Pass 1; with ``skip``, an item pass 1 cannot read is left out and pass 1 starts over without it."""
    while True:
        try:
            return setup, compute_statistics(setup.plan, workers, progress, warnings)
        except ImagesUnreadableError as exc:
            if not skip or not exc.images:
                raise
            failed = {setup.inputs.items[i].id: reason for i, reason in exc.images.items()}
            log.warning("pass 1 cannot read item(s) %s; starting over without them", ", ".join(failed))
            kept = [it for it in items if it.id not in failed and it.id not in setup.inputs.skipped]
            skipped = {**setup.inputs.skipped, **failed}
            setup = prepare(kept, setup.options, 2 * threads_of(workers), skip)
            setup = replace(setup, inputs=replace(setup.inputs, skipped={**skipped, **setup.inputs.skipped}))


def _publish_run(
    setup: RunSetup,
    stats: Statistics,
    cached: Statistics | None,
    storage: Storage,
    manifest: RunManifest,
    skip: bool,
    workers: Workers,
    progress: Progress,
    warnings: list[str],
) -> tuple[RunResult, dict[str, Any]]:
    """Everything a run writes, under its lock: model, statistics cache, items, collection (see :func:`run`).

    Returns the run's result and its collection's JSON.
    """
    model, model_href, reference_href = solve(setup, stats, storage, warnings)
    if cached is None:
        _save_statistics(setup.plan, storage, stats)
    manifest.model_known(model.digest(), model_href)
    record_overlap_pixels(setup.plan, model, stats, setup.options.output.overlap_pixels, workers, progress)
    warnings += pixel_rise_warnings(model, setup.inputs.selection.labels)
    job = ItemJob(setup, model, storage, model_href)
    resume = setup.options.execution.resume
    skipped: dict[str, str] = {}
    if setup.options.output.format == "zarr":
        cube, kept = write_cube(job, resume, workers, progress, manifest)
        dicts, reused = [cube], [it.id for it in setup.items] if kept else []
    else:
        dicts, reused, skipped = apply_items(job, resume, workers, progress, manifest, skip)
        if not dicts:
            first = next(iter(skipped.items()))
            raise InputError(f"every item failed, none was published; item {first[0]}: {first[1]}")
        record_item_quality(storage, model, dicts)
    collection_href, collection = write_collection(storage, setup.collection_id, dicts, reference_href)
    fields = {"event": "published", "collection": collection_href, "model": model_href, "reused": len(reused)}
    log.info("published %d items (%d kept): %s", len(dicts), len(reused), collection_href, extra={"fields": fields})
    warnings += skip_warnings(skipped)
    result = RunResult(
        model,
        dicts,
        collection_href,
        model_href,
        storage.url,
        reused,
        warnings,
        statistics_reused=cached is not None,
        skipped={**setup.inputs.skipped, **skipped},
    )
    return result, collection


def failure_reason(exc: BaseException) -> str:
    """The manifest's one line on why a run failed (as the command line shows it, for stacrrn errors).

    Either way URLs lose their query strings (:func:`~stacrrn.io.hrefs.redact_text`), as in every error line.
    """
    if isinstance(exc, StacrrnError):
        error = report(exc)
        return f"{error.error}: {error.message}"
    return f"{type(exc).__name__}: {redact_text((str(exc).strip().splitlines() or [''])[0][:300])}"


def usable_statistics(setup: RunSetup, stats: Statistics) -> list[str]:
    """:func:`~stacrrn.pipeline.passes.solve.check_statistics` for a STAC run, and repeated dates of a time series.

    Raises on unusable statistics; returns the warnings.
    """
    labels = setup.inputs.selection.labels
    warnings = check_statistics(stats, setup.plan, setup.options.model.min_overlap, labels, setup.references)
    if setup.options.inputs.mode == "timeseries":
        warnings += repeated_dates_warning([it.datetime or it.common_metadata.start_datetime for it in setup.items])
    return warnings


def solve(
    setup: RunSetup, stats: Statistics, storage: Storage, warnings: list[str]
) -> tuple[RRNModel, str, str | None]:
    """Fit the model from pass-1 statistics and publish it with the reference block map.

    Parameters
    ----------
    setup
        The run's setup.
    stats
        Merged pass-1 statistics, accepted by :func:`usable_statistics`.
    storage
        Output location.
    warnings
        Receives warnings about bands that fell back to another estimate.

    Returns
    -------
    tuple
        The model, its href, and the reference block map's href (``None`` without a local step).
    """
    m, plan = setup.options.model, setup.plan
    labels = setup.inputs.selection.labels
    model = fit_model(plan, stats, m.method, setup.references, m.min_overlap, m.local_params, m.estimator)
    log_model(model)
    warnings += unfitted_band_warning(model, stats, labels)
    model_href = storage.put_text(model.to_json(), versioned("stacrrn-model", model, ".json"))
    if model.local_fit is None:
        return model, model_href, None
    with tempfile.TemporaryDirectory(prefix="stacrrn-") as tmp:
        key = versioned("reference-blockmap", model, ".tif")
        path = write_block_map(Path(tmp) / key, *reference_map(model, stats), model.digest())
        return model, model_href, storage.put_file(path, key)
