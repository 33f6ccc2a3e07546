"""Fit a model to an xarray Dataset or DataArray: the file jobs' pass 1 and solve, on a Plan that reads it."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stacrrn.core.model import RRNModel
from stacrrn.errors import ParameterError
from stacrrn.options import LOCAL_CLOUD_MASKS, RunOptions, default_of
from stacrrn.pipeline.execution.parallel import DaskWorkers, Workers, check_workers
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.checks import check_plan_graph
from stacrrn.pipeline.inputs.pairs import pair_graph
from stacrrn.pipeline.inputs.spectral import SpectralBands
from stacrrn.pipeline.masks.cloud_masks import with_local_masks
from stacrrn.pipeline.match import STAC_ONLY, date_warnings, record_dates
from stacrrn.pipeline.passes.overlap_metrics import pixel_rise_warnings, record_overlap_pixels
from stacrrn.pipeline.passes.solve import check_statistics, fit_model, log_model, unfitted_band_warning
from stacrrn.pipeline.passes.statistics import compute_statistics
from stacrrn.xarray.cube import Cube, Nodata, XrObject, cube_of
from stacrrn.xarray.plan import Footprints, dataset_plan

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

FILE_ONLY = ("crs", "resolution", "resume", "fidelity_every")
"""Options of jobs that lay out a grid over files or write them; an xarray fit refuses them (the
object's grid is the grid; :func:`~stacrrn.xarray.apply` writes nothing)."""

Reference = str | int | np.datetime64 | dt.datetime
"""An image held fixed: its name (label), its position along ``dim``, or its date-time (a date
string such as ``"2021-05-27"`` holds every image of that day)."""


def check_xarray_options(options: RunOptions, references: bool = False) -> None:
    """Refuse STAC-only and file-only options, cloud masks without quality assets, and a bad pair graph.

    ``references`` tells whether references are given (by the options or otherwise): ``star`` needs them.

    Raises
    ------
    ParameterError
        For such an option set to anything but its default, or an unusable pair graph.
    """
    i = options.inputs
    given = references or bool(options.model.references)
    pair_graph(2, i.mode, i.neighbours, ([0] if given else []) if i.star else None)
    flat = options.flat()
    stac = [name for name in STAC_ONLY if flat[name] != default_of(name)]
    if stac:
        raise ParameterError(f"option(s) {', '.join(stac)} apply to STAC runs only, not to xarray data")
    files = [name for name in FILE_ONLY if flat[name] != default_of(name)]
    if files:
        raise ParameterError(
            f"option(s) {', '.join(files)} apply to jobs on files; with xarray data, reproject or select "
            "the data itself (the object's grid is the common grid) and write the corrected data yourself"
        )
    if options.masks.cloud_mask not in LOCAL_CLOUD_MASKS:  # as local files: no quality assets to decode
        raise ParameterError(
            f"cloud_mask {options.masks.cloud_mask!r} needs STAC items; for xarray data choose one of "
            f"{', '.join(LOCAL_CLOUD_MASKS)}"
        )


def reference_indices(cube: Cube, references: Sequence[Reference] | Reference | None) -> list[int]:
    """Positions along ``dim`` of the reference images (see :data:`Reference`).

    Raises
    ------
    ParameterError
        If a reference matches no image.
    """
    out: list[int] = []
    for ref in _listed(references):
        hits = _matches(cube, ref)
        if not hits:
            raise ParameterError(
                f"reference {ref!r} is none of the images along {cube.dim!r} ({', '.join(cube.names)}): "
                "give a label, a position or a date"
            )
        out.extend(h for h in hits if h not in out)
    return out


def _listed(references: Sequence[Reference] | Reference | None) -> list[Reference]:
    if references is None:
        return []
    return [references] if isinstance(references, str | int | np.datetime64 | dt.datetime) else list(references)


def _matches(cube: Cube, ref: Reference) -> list[int]:
    n = cube.steps
    if isinstance(ref, int | np.integer) and not isinstance(ref, bool):
        return [int(ref) % n] if -n <= ref < n else []
    if isinstance(ref, str) and ref in cube.names:
        return [cube.names.index(ref)]
    if not any(cube.dates) or not isinstance(ref, str | np.datetime64 | dt.datetime):
        return []
    try:
        when = pd.Timestamp(ref)
    except ValueError:
        return []
    if when.tzinfo is not None:
        when = when.tz_convert("UTC").tz_localize(None)
    whole_day = isinstance(ref, str) and len(ref.strip()) <= 10
    stamps = [None if d is None else pd.Timestamp(d) for d in cube.dates]
    if whole_day:
        return [k for k, s in enumerate(stamps) if s is not None and s.normalize() == when.normalize()]
    return [k for k, s in enumerate(stamps) if s is not None and s == when]


def workers_of(workers: Workers | Client | None, options: RunOptions) -> Workers:
    """Threads, or a Dask cluster (a ``distributed.Client`` is wrapped), defaulting to the options'.

    Raises
    ------
    ParameterError
        For fewer than one thread.
    """
    if workers is None:
        return options.execution.workers
    if not isinstance(workers, int | DaskWorkers):
        if not hasattr(workers, "nthreads"):
            raise ParameterError(f"workers= is a number of threads or a distributed.Client, got {workers!r}")
        workers = DaskWorkers(workers)
    check_workers(workers)
    return workers


def _check_order(cube: Cube, options: RunOptions) -> None:
    """A time series paired by ``neighbours`` needs its images in date order."""
    dates = [d for d in cube.dates if d is not None]
    if options.inputs.mode != "timeseries" or options.inputs.neighbours is None or len(dates) < cube.steps:
        return
    if any(b < a for a, b in itertools.pairwise(dates)):
        raise ParameterError(
            f"neighbours pairs nearby dates, but {cube.dim!r} is not in date order: sort it first, "
            f"e.g. `ds.sortby({cube.dim!r})`"
        )


def fit(
    obj: XrObject,
    *,
    dim: str = "time",
    band_dim: str = "band",
    variables: Sequence[str] | None = None,
    options: RunOptions | None = None,
    references: Sequence[Reference] | Reference | None = None,
    workers: Workers | Client | None = None,
    nodata: Nodata = "auto",
    footprints: Footprints = "grid",
    band_names: Sequence[str] | None = None,
    progress: Progress = no_progress,
    **values: Any,
) -> RRNModel:
    """Fit a normalization model to the images along ``dim`` of an xarray object.

    Pass 1 reads the object chunk by chunk through a :class:`~stacrrn.pipeline.inputs.plan.Plan`
    and computes the same exact moments as :func:`stacrrn.match` on files holding the same
    pixels; the solve is :func:`~stacrrn.pipeline.passes.solve.fit_model`.

    Parameters
    ----------
    obj
        A Dataset with one variable per band, dims ``(time, y, x)`` (as ``odc.stac.load``
        returns), or a DataArray with dims ``(time, band, y, x)`` (as ``stackstac.stack``
        returns) or ``(time, y, x)``; NumPy- or Dask-backed. Its CRS and transform come from
        odc-geo (``ds.odc.geobox``), or rioxarray when installed.
    dim
        Dimension of the images.
    band_dim
        Dimension of the bands of a DataArray (its coordinate names the bands).
    variables
        Bands to normalize: variable names (Dataset) or band labels (DataArray); default all
        variables with dims ``(dim, y, x)``, all bands.
    options
        The job's options (:class:`~stacrrn.options.RunOptions`). Used: ``method``,
        ``estimator``, ``min_overlap``, ``block_size``, ``n_blocks``, ``local_params``,
        ``mode``, ``neighbours``, ``star``, ``cloud_mask`` (``none``/``auto`` or ``spectral``),
        ``reflectance``, ``pif``, ``overlap_pixels``, ``workers``, ``chunk_size``. STAC-only
        options and options of jobs on files (``crs``, ``resolution``, ``resume``,
        ``fidelity_every``) must keep their defaults.
    references
        Images held fixed: labels (names), positions along ``dim``, or date-times (a date
        string holds every image of that day); default ``options.model.references``, else
        all images' central tendency.
    workers
        Threads, or a Dask cluster (a ``distributed.Client``), running pass 1 (default
        ``options.execution.workers``). Each chunk is computed with Dask's synchronous
        scheduler inside its worker.
    nodata
        Value marking invalid pixels besides NaN: ``"auto"`` (each band's ``nodata`` or
        ``_FillValue`` attribute), ``None`` or a number.
    footprints
        ``"grid"`` (default): every image spans the whole grid, as in a time series;
        ``"data"``: each image spans the bounding box of its valid pixels (a mosaic loaded on
        a common grid), at the cost of one more read. Footprints bound the local step's fields
        and the chunks each image is read in.
    band_names
        ``eo:common_name`` of each band (``blue``, ``red``, ``nir``...) for the spectral cloud
        test and NDVI PIFs; default the band labels themselves.
    progress
        Progress callback ``(stage, done, total)``.
    **values
        Options by flat name (``method="global"``), applied on top of ``options``.

    Returns
    -------
    RRNModel
        The model; its images are named by their labels along ``dim`` (paths
        ``<dim>=<label>``) and ``quality["xarray"]`` records ``dim`` and the band labels.
        Warnings of the checks (images overlapping nothing, unfitted bands...) are issued
        as :class:`UserWarning`.

    Raises
    ------
    ParameterError
        For refused or unknown options, an unknown ``dim``, variable or reference.
    InputError
        For unusable data: fewer than two images, no CRS, no overlap (see
        :func:`~stacrrn.pipeline.passes.solve.check_statistics`).
    """
    o = (options or RunOptions()).updated(**values)
    o.check()
    check_xarray_options(o, bool(_listed(references)))
    threads = workers_of(workers, o)
    cube = cube_of(obj, dim, band_dim, variables, nodata)
    _check_order(cube, o)
    i, m = o.inputs, o.model
    plan = dataset_plan(
        cube,
        footprints=footprints,
        chunk_size=o.execution.chunk_size,
        block_size=m.block_size,
        n_blocks=m.n_blocks,
        mode=i.mode,
        neighbours=i.neighbours,
    )
    spectral = SpectralBands.named(band_names or cube.labels, cube.labels, o.masks.reflectance)
    cloud_mask = "none" if o.masks.cloud_mask == "auto" else o.masks.cloud_mask
    plan = with_local_masks(plan, cloud_mask, {}, spectral, o.masks.pif)
    refs = reference_indices(cube, m.references if references is None else references)
    if i.star:
        plan = replace(plan, pairs=pair_graph(cube.steps, i.mode, i.neighbours, refs))
    check_plan_graph(plan.names, plan.footprints, plan.pairs, refs)
    notes = date_warnings(plan, o)
    stats = compute_statistics(plan, threads, progress, notes)
    labels = list(cube.labels)
    notes += check_statistics(stats, plan, m.min_overlap, labels, refs)
    model = fit_model(plan, stats, m.method, refs, m.min_overlap, m.local_params, m.estimator)
    log_model(model)
    notes += unfitted_band_warning(model, stats, labels)
    record_overlap_pixels(plan, model, stats, o.output.overlap_pixels, threads, progress)
    notes += pixel_rise_warnings(model, labels)
    record_dates(model, plan)
    model.quality["xarray"] = {"dim": dim, "bands": labels}
    for note in notes:
        log.warning("%s", note)
        warnings.warn(note, UserWarning, stacklevel=2)
    return model
