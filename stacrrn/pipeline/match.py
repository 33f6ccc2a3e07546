"""The whole job on local rasters: plan -> statistics -> solve -> apply -> model JSON."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stacrrn.core.model import RRNModel
from stacrrn.errors import InputError, OutputError, ParameterError
from stacrrn.io.acquisition import format_datetime
from stacrrn.io.files import atomic_write_text, remove_temporary_folder
from stacrrn.io.lock import OutputLock
from stacrrn.io.storage import Storage
from stacrrn.options import LOCAL_CLOUD_MASKS, RunOptions, default_of
from stacrrn.pipeline.execution.parallel import Workers, check_workers
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.checks import check_plan_graph
from stacrrn.pipeline.inputs.pairs import pair_graph, repeated_dates_warning, undated_warning
from stacrrn.pipeline.inputs.plan import Plan, make_plan
from stacrrn.pipeline.inputs.spectral import SpectralBands
from stacrrn.pipeline.masks.cloud_masks import with_local_masks
from stacrrn.pipeline.passes.apply import (
    ApplyResult,
    apply_model,
    read_model,
    record_outputs,
    write_block_maps,
)
from stacrrn.pipeline.passes.overlap_metrics import pixel_rise_warnings, record_overlap_pixels
from stacrrn.pipeline.passes.solve import (
    check_statistics,
    fit_model,
    log_model,
    resolve_references,
    unfitted_band_warning,
)
from stacrrn.pipeline.passes.statistics import STATISTICS_FILE, compute_statistics, load_statistics, save_statistics

MODEL_FILE = "stacrrn-model.json"

log = logging.getLogger(__name__)


@dataclass
class MatchResult:
    """Outcome of :func:`match`."""

    model: RRNModel
    outputs: list[ApplyResult]
    model_path: Path
    block_maps: list[Path]
    warnings: list[str] = field(default_factory=list)
    statistics_reused: bool = False


def _previous_model(path: Path) -> RRNModel | None:
    """The model an earlier run left at ``path``, if any and readable."""
    try:
        return read_model(str(path)) if path.exists() else None
    except InputError:
        return None


def check_output(out_dir: Path, plan: Plan) -> None:
    """Check ``out_dir`` can be created and written, and would not overwrite an input.

    Nothing is created here, so a run rejected later leaves no trace.

    Raises
    ------
    OutputError
        If the folder (or its nearest existing parent) is not a writable folder.
    ParameterError
        If an output would replace one of the inputs.
    """
    existing = out_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to output folder {out_dir}: {existing} is not a writable folder")
    for info in plan.infos:
        if (out_dir / f"{info.name}.tif").resolve() == Path(info.path).resolve():
            raise ParameterError(f"--out {out_dir} would overwrite the input {info.path}; choose another folder")


def prepare_output(out_dir: Path) -> None:
    """Create ``out_dir`` (after the inputs passed every check).

    Raises
    ------
    OutputError
        If the folder cannot be created.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None


STAC_ONLY = ("assets", "collection_id", "format", "on_error", "publish")
"""Options that only a STAC run uses; local jobs refuse them (bands of local files: ``bands``)."""


def check_local_options(options: RunOptions) -> None:
    """Refuse STAC-only options, cloud masks local files cannot have and a bad pair graph.

    Raises
    ------
    ParameterError
        For a STAC-only option that is set, a ``cloud_mask`` not in :data:`LOCAL_CLOUD_MASKS`,
        fewer than one neighbour, or ``star`` without references or outside a time series.
    """
    i = options.inputs
    pair_graph(2, i.mode, i.neighbours, ([0] if options.model.references else []) if i.star else None)
    flat = options.flat()
    if set_ := [name for name in STAC_ONLY if flat[name] != default_of(name)]:
        raise ParameterError(f"option(s) {', '.join(set_)} apply to STAC runs only, not to local files")
    if options.masks.cloud_mask not in LOCAL_CLOUD_MASKS:
        raise ParameterError(
            f"--cloud-mask {options.masks.cloud_mask!r} needs STAC items; for local files choose one of "
            f"{', '.join(LOCAL_CLOUD_MASKS)} (quality rasters: --mask NAME=PATH[:KIND])"
        )


def date_warnings(plan: Plan, options: RunOptions) -> list[str]:
    """A time series' warnings about its dates: inputs without one, dates shared by several inputs."""
    if options.inputs.mode != "timeseries":
        return []
    undated = undated_warning(plan.names, plan.dates, options.inputs.neighbours)
    return undated + repeated_dates_warning(plan.dates, "inputs")


def record_dates(model: RRNModel, plan: Plan) -> None:
    """Each image's acquisition date in the model's per-image table (``datetime``, as a run's items give it)."""
    dates = {name: when for name, when in zip(plan.names, plan.dates, strict=False) if when is not None}
    for row in model.quality.get("images", []):
        if row["name"] in dates:
            row["datetime"] = format_datetime(dates[row["name"]])


def match(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
    *,
    bands: Sequence[int] | None = None,
    band_names: Sequence[str] | None = None,
    masks: Mapping[str, str] | None = None,
    workers: Workers | None = None,
    progress: Progress = no_progress,
    datetime_from_name: str | None = None,
    **values: Any,
) -> MatchResult:
    """Normalize overlapping rasters radiometrically (Yu et al. 2017 global-to-local).

    Parameters
    ----------
    inputs
        Paths of the rasters to normalize (two or more, overlapping).
    out_dir
        Folder receiving ``<name>.tif`` per input, ``stacrrn-model.json``, the cached
        statistics and ``blockmaps/<name>_field.tif``.
    options
        The job's options (:class:`~stacrrn.options.RunOptions`); the STAC-only ones
        (``assets``, ``collection_id``, ``on_error``, ``publish``) must keep their defaults.
        ``references`` are names (file stems), file names or paths; ``cloud_mask`` is
        ``auto`` (the ``masks`` files, if any), ``none`` or ``spectral`` (needs
        ``band_names`` with blue and red, and ``reflectance``). With ``mode="timeseries"``
        the inputs are ordered by their acquisition dates (in the order given when some
        have none) and paired by ``neighbours``/``star`` as the dates of a STAC run.
    bands
        1-based band indexes (default: all, counts must match).
    band_names
        ``eo:common_name`` of each selected band (``blue``, ``red``, ``nir``...), for the
        spectral cloud test and NDVI PIFs.
    masks
        Mask rasters per input name, ``"path[:kind]"``: ``clear`` (non-zero = usable,
        default), ``qa_pixel`` or ``scl``; on any grid or CRS (resampled, nearest).
    workers
        Threads (a number) or a Dask client for the pixel passes (default
        ``options.execution.workers``).
    progress
        Progress callback ``(stage, done, total)``.
    datetime_from_name
        strftime-style pattern of the acquisition date in the file names (``%Y%m%d`` finds
        ``20210326`` in ``Landsat_20210326.tif``); default: the rasters' metadata or sidecar
        files (:func:`~stacrrn.io.acquisition.acquisition_dates`). Dates order a time series
        and are recorded in the model's per-image table.
    **values
        Options by flat name (``method="global"``), applied on top of ``options``.

    Returns
    -------
    MatchResult
        The model, per-output results, paths and warnings.
    """
    o = (options or RunOptions()).updated(**values)
    o.check()
    check_local_options(o)
    workers = o.execution.workers if workers is None else workers
    check_workers(workers)
    cloud_mask = "none" if o.masks.cloud_mask == "auto" else o.masks.cloud_mask
    method, estimator, min_overlap = o.model.method, o.model.estimator, o.model.min_overlap
    chunk_size, resume, fidelity_every = o.execution.chunk_size, o.execution.resume, o.output.fidelity_every
    out = Path(out_dir).absolute()  # workers of a cluster may run in another folder
    i, m = o.inputs, o.model
    grid = (i.crs, i.resolution, m.block_size, m.n_blocks, chunk_size)
    plan = make_plan(inputs, bands, *grid, mode=i.mode, neighbours=i.neighbours, datetime_from_name=datetime_from_name)
    spectral = SpectralBands.named(band_names, [str(b) for b in plan.bands], o.masks.reflectance)
    plan = with_local_masks(plan, cloud_mask, masks or {}, spectral, o.masks.pif)
    refs = resolve_references(plan, m.references)
    if i.star:
        plan = replace(plan, pairs=pair_graph(len(plan.names), i.mode, i.neighbours, refs))
    check_plan_graph(plan.names, plan.footprints, plan.pairs, refs)
    check_output(out, plan)
    warnings = date_warnings(plan, o)
    fingerprint = plan.fingerprint()
    stats_path = out / STATISTICS_FILE
    stats = load_statistics(stats_path, fingerprint)
    reused = stats is not None
    if stats is None:
        stats = compute_statistics(plan, workers, progress, warnings)
    log.info(
        "pass 1 %s: %d images, %d overlapping pairs", "reused" if reused else "done", len(plan.names), len(stats.pairs)
    )
    warnings += check_statistics(stats, plan, min_overlap, references=refs)
    prepare_output(out)
    with OutputLock(Storage(str(out))):
        if not reused:
            save_statistics(stats, stats_path, fingerprint)
        model = fit_model(plan, stats, method, refs, min_overlap, m.local_params, estimator)
        log_model(model)
        warnings += unfitted_band_warning(model, stats)
        record_overlap_pixels(plan, model, stats, o.output.overlap_pixels, workers, progress)
        warnings += pixel_rise_warnings(model)
        model_path = out / MODEL_FILE
        try:
            block_maps = write_block_maps(model, stats, out, resume, workers)
            outputs = apply_model(model, plan.infos, out, workers, resume, chunk_size, progress, fidelity_every)
            record_outputs(model, outputs, _previous_model(model_path) if resume else None)
            record_dates(model, plan)
            atomic_write_text(model_path, model.to_json())
            log.info("pass 2 done: %d outputs in %s", len(outputs), out, extra={"fields": {"model": str(model_path)}})
        finally:
            remove_temporary_folder(out / "blockmaps")
            remove_temporary_folder(out)
    return MatchResult(model, outputs, model_path, block_maps, warnings, reused)
