"""The whole job on local rasters: plan -> statistics -> solve -> apply -> model JSON."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stacrrn.core.fidelity import SAMPLE_EVERY
from stacrrn.core.local_params import LocalParams
from stacrrn.core.model import RRNModel
from stacrrn.errors import InputError, OutputError, ParameterError
from stacrrn.io.files import atomic_write_text, remove_temporary_folder
from stacrrn.io.lock import OutputLock
from stacrrn.io.storage import Storage
from stacrrn.pipeline.execution.parallel import Workers, check_workers
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.checks import check_plan_graph
from stacrrn.pipeline.inputs.pif_options import PifOptions
from stacrrn.pipeline.inputs.plan import DEFAULT_CHUNK, Plan, make_plan
from stacrrn.pipeline.inputs.spectral import SpectralBands
from stacrrn.pipeline.masks.cloud_masks import LOCAL_CLOUD_MASKS, with_local_masks
from stacrrn.pipeline.passes.apply import (
    ApplyResult,
    apply_model,
    check_fidelity_every,
    read_model,
    record_outputs,
    write_block_maps,
)
from stacrrn.pipeline.passes.overlap_metrics import record_overlap_pixels
from stacrrn.pipeline.passes.solve import (
    band_fallback_warning,
    check_method,
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


def match(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    references: Sequence[str] | None = None,
    method: str = "global+local",
    bands: Sequence[int] | None = None,
    block_size: float | None = None,
    n_blocks: int | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    workers: Workers = 1,
    resume: bool = False,
    min_overlap: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    local_params: LocalParams | None = None,
    cloud_mask: str = "none",
    masks: Mapping[str, str] | None = None,
    band_names: Sequence[str] | None = None,
    reflectance: tuple[float, float] | None = None,
    pif: PifOptions | None = None,
    estimator: str = "spread",
    overlap_pixels: bool | None = None,
    progress: Progress = no_progress,
    fidelity_every: int = SAMPLE_EVERY,
) -> MatchResult:
    """Normalize overlapping rasters radiometrically (Yu et al. 2017 global-to-local).

    Parameters
    ----------
    inputs
        Paths of the rasters to normalize (two or more, overlapping).
    out_dir
        Folder receiving ``<name>.tif`` per input, ``stacrrn-model.json``, the cached
        statistics and ``blockmaps/<name>_field.tif``.
    references
        Names (file stems), file names or paths of reference images. Default: all
        images, i.e. normalization towards their central tendency.
    method
        ``global`` (gain/offset), ``local`` (block fields only) or ``global+local``.
    bands
        1-based band indexes (default: all, counts must match).
    block_size, n_blocks
        Block grid of the local step: edge in CRS units, or number of blocks along
        the longer side of the union (default 32).
    crs, resolution
        Common grid for the statistics (default: first input's CRS, finest resolution).
    workers
        Threads for the pixel passes.
    resume
        Keep outputs that already exist and were made with the same model.
    min_overlap
        Overlaps with fewer valid pixels are ignored.
    chunk_size
        Chunk edge in pixels.
    local_params
        Weights of the local solve.
    cloud_mask
        ``none`` or ``spectral`` (the spectral cloud test on the bands; needs
        ``band_names`` with blue and red, and ``reflectance``).
    masks
        Mask rasters per input name, ``"path[:kind]"``: ``clear`` (non-zero = usable,
        default), ``qa_pixel`` or ``scl``; on any grid or CRS (resampled, nearest).
    band_names
        ``eo:common_name`` of each selected band (``blue``, ``red``, ``nir``...), for the
        spectral cloud test and NDVI PIFs.
    reflectance
        ``(scale, offset)``: reflectance = value * scale + offset.
    pif
        Pseudo-invariant feature selection and holdout (:class:`PifOptions`).
    estimator
        Relative gain estimator of the global step: ``spread`` or ``orthogonal``.
    overlap_pixels
        Read the overlaps once more for the pixelwise overlap RMSE and MAE before and after
        the whole model (``quality["overlap_pixels"]``); default when the overlaps hold no
        more pixels than the images (a mosaic, not a time series).
    progress
        Progress callback ``(stage, done, total)``.
    fidelity_every
        Pass 2 measures the outputs' fidelity (correlation, spectral angle, SSIM) on one
        row of 8 x 8 windows (8 image rows) in every ``fidelity_every`` (default 4; 1: every
        pixel).

    Returns
    -------
    MatchResult
        The model, per-output results, paths and warnings.
    """
    check_method(method, estimator)
    check_workers(workers)
    check_fidelity_every(fidelity_every)
    if cloud_mask not in LOCAL_CLOUD_MASKS:
        raise ParameterError(f"unknown --cloud-mask {cloud_mask!r}; choose one of {', '.join(LOCAL_CLOUD_MASKS)}")
    out = Path(out_dir).absolute()  # workers of a cluster may run in another folder
    plan = make_plan(inputs, bands, crs, resolution, block_size, n_blocks, chunk_size)
    spectral = SpectralBands.named(band_names, [str(b) for b in plan.bands], reflectance)
    plan = with_local_masks(plan, cloud_mask, masks or {}, spectral, pif)
    refs = resolve_references(plan, references)
    check_plan_graph(plan.names, plan.footprints, plan.pairs, refs)
    check_output(out, plan)
    fingerprint = plan.fingerprint()
    stats_path = out / STATISTICS_FILE
    stats = load_statistics(stats_path, fingerprint)
    reused = stats is not None
    warnings: list[str] = []
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
        model = fit_model(plan, stats, method, refs, min_overlap, local_params, estimator)
        log_model(model)
        warnings += band_fallback_warning(model) + unfitted_band_warning(model, stats)
        record_overlap_pixels(plan, model, stats, overlap_pixels, workers, progress)
        model_path = out / MODEL_FILE
        try:
            block_maps = write_block_maps(model, stats, out, resume)
            outputs = apply_model(model, plan.infos, out, workers, resume, chunk_size, progress, fidelity_every)
            record_outputs(model, outputs, _previous_model(model_path) if resume else None)
            atomic_write_text(model_path, model.to_json())
            log.info("pass 2 done: %d outputs in %s", len(outputs), out, extra={"fields": {"model": str(model_path)}})
        finally:
            remove_temporary_folder(out / "blockmaps")
            remove_temporary_folder(out)
    return MatchResult(model, outputs, model_path, block_maps, warnings, reused)
