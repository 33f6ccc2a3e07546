"""Pass 2: correct every input window by window and write one COG per input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from stacrrn.core.correct import cast, correct
from stacrrn.core.fidelity import FidelitySums
from stacrrn.core.fields import F32, field_at_pixels, window_field
from stacrrn.core.local_model import LocalFit
from stacrrn.core.metrics import reference_block_map
from stacrrn.core.model import RRNModel
from stacrrn.core.moments import BandSummary
from stacrrn.core.settings import SAMPLE_EVERY
from stacrrn.core.statistics import Layer, Statistics
from stacrrn.errors import InputError
from stacrrn.io.cog import cog_writer, write_cog
from stacrrn.io.grid import chunks, native_to_grid
from stacrrn.io.raster import RasterInfo, datasets_held, read_window
from stacrrn.options import DEFAULT_CHUNK
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded, threads_of
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.plan import ChunkReader, Plan
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]

STRIP_ROWS = 64
"""Rows of a window corrected at once: a 64 x 1024 x 4 strip of float64 stays in the CPU cache."""

PROFILE_KEYS = ("mean_", "std_")
"""Keys of an output's fidelity that go into the per-image table (mean and spread before/after)."""

MODEL_TAG = "STACRRN_MODEL"
"""GeoTIFF metadata tag holding the digest of the model an output was made with."""


@dataclass(frozen=True)
class ApplyResult:
    """What pass 2 did for one input."""

    name: str
    path: str
    clipped: list[int]
    moved_off_nodata: list[int]
    skipped: bool
    statistics: list[dict[str, float]] = field(default_factory=list)
    fidelity: dict[str, Any] = field(default_factory=dict)


def output_is_current(path: Path, grid: Grid, n_bands: int, dtype: str, digest: str) -> bool:
    """True if ``path`` is a complete raster of this model on ``grid`` (for ``--resume``)."""
    try:
        with rasterio.open(path) as src:
            return bool(
                src.width == grid.width
                and src.height == grid.height
                and src.count == n_bands
                and src.dtypes[0] == dtype
                and src.tags().get(MODEL_TAG) == digest
            )
    except (RasterioError, OSError):
        return False


def _field_on_window(local: LocalFit, i: int, rows: F64, cols: F64) -> F32:
    """Image ``i``'s gain field at the window's pixels -> ``(bands, rows, cols)``."""
    return field_at_pixels(local.fields[i], rows, cols, local.blocks, local.frames[i])


def read_model(href: str) -> RRNModel:
    """A fitted model from its JSON (the ``stacrrn-model*.json`` that match and run write): a path or URL.

    Raises
    ------
    InputError
        If it cannot be read or is not a stacrrn model.
    """
    import fsspec

    try:
        with fsspec.open(href, "rt") as f:
            text = f.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the model {href}: {exc}") from None
    try:
        return RRNModel.from_json(text)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        what = f"{type(exc).__name__}: {exc}"
        raise InputError(f"{href} is not a stacrrn model ({what}); pass the model JSON of a match or run") from None


LayerNormalizer = Callable[[Box, dict[int, Layer]], dict[int, Layer]]
"""``normalize(box, layers)``: the plan's chunk layers at ``box`` with the model applied."""


def layer_normalizer(plan: Plan, model: RRNModel, *, in_place: bool = False) -> LayerNormalizer:
    """A function applying ``model`` to layers that ``plan.read_chunk`` read (values in float64).

    The plan may lie on another grid than the model's (a mosaic's, a seam grid): the local
    fields are evaluated at the chunk's pixel centres mapped onto the model's grid. Validity
    is unchanged. With ``in_place``, float64 values are corrected in their own array, for
    layers nobody reads again (a 4 x 1024² chunk: 1.8 ms, against 4.7 ms into a new array).

    Raises
    ------
    InputError
        If an image of the plan is not in the model, or the band counts differ.
    """
    names = [im.name for im in model.images]
    missing = [n for n in plan.names if n not in names]
    if missing:
        raise InputError(f"{', '.join(missing)} not in the model ({', '.join(names)}); use the model of these images")
    if len(plan.bands) != len(model.bands):
        counts = f"the model has {len(model.bands)} band(s), the images {len(plan.bands)}"
        raise InputError(f"{counts}; select the bands the model was fitted on")
    index = [names.index(n) for n in plan.names]
    gains, offsets, local = model.global_fit.gains, model.global_fit.offsets, model.local_fit

    def normalize(box: Box, layers: dict[int, Layer]) -> dict[int, Layer]:
        out = {}
        at = native_to_grid(plan.grid, model.grid, box) if local is not None else None  # the chunk on the model's grid
        for i, (values, valid) in layers.items():
            m = index[i]
            field, shift = None, None
            if local is not None and at is not None:
                field, shift = _field_on_window(local, m, *at), local.shifts[m]
            into = values if in_place and values.dtype == np.float64 and values.flags.writeable else None
            out[i] = (correct(values, gains[m], offsets[m], field, shift, out=into), valid)
        return out

    return normalize


def normalizing_reader(plan: Plan, model: RRNModel) -> ChunkReader:
    """``plan``'s chunk reader with ``model`` applied: every image comes out normalized (float64).

    This normalizes a mosaic while it is blended, without corrected images. See
    :func:`layer_normalizer` for the grids and the errors; the layers just read are
    corrected in place.
    """
    normalize = layer_normalizer(plan, model, in_place=True)

    def read(box: Box, images: list[int]) -> dict[int, Layer]:
        return normalize(box, plan.read_chunk(box, images))

    return read


def correct_raster(
    model: RRNModel,
    i: int,
    info: RasterInfo,
    out: Path,
    chunk_size: int = DEFAULT_CHUNK,
    positions: Sequence[int] | None = None,
    source_bands: Sequence[int] | None = None,
    fidelity_every: int = SAMPLE_EVERY,
) -> ApplyResult:
    """Correct raster ``info`` (image ``i`` of the model) window by window into the COG ``out``.

    Parameters
    ----------
    model
        The fitted model.
    i
        The image's index in the model.
    info
        The raster to correct (a local file or a remote asset), read on its own grid.
    out
        Output COG path (written through a staging file and renamed).
    chunk_size
        Window edge in the raster's pixels.
    positions, source_bands
        Which model bands the raster holds (positions in ``model.bands``) and at which
        1-based band indexes; default all model bands at ``model.bands``.
    fidelity_every
        Fidelity measured on one row of 8 x 8 windows (8 image rows) in every
        ``fidelity_every`` (1: every pixel; see :class:`~stacrrn.core.fidelity.FidelitySums`).

    Returns
    -------
    ApplyResult
        Clipping counts, per-band statistics of the corrected pixels and their fidelity to
        the input (:class:`~stacrrn.core.fidelity.FidelitySums`).
    """
    pos = np.arange(len(model.bands)) if positions is None else np.asarray(positions, dtype=np.intp)
    src_bands = list(model.bands) if source_bands is None else list(source_bands)
    gain, offset = model.global_fit.gains[i][pos], model.global_fit.offsets[i][pos]
    local = model.local_fit
    shift = None if local is None else local.shifts[i][pos]
    nb = len(pos)
    clipped = np.zeros(nb, dtype=np.int64)
    moved = np.zeros(nb, dtype=np.int64)
    summary = BandSummary.empty(nb)
    fidelity = FidelitySums(nb, fidelity_every)
    tags = {MODEL_TAG: model.digest(), "STACRRN_SOURCE": info.path, "STACRRN_METHOD": model.method}
    # inputs masked without a nodata value (alpha band, internal mask) keep their mask; the
    # input stays open across its windows (one open, not one per window)
    with cog_writer(out, info.grid, nb, info.dtype, info.nodata, tags) as writer, datasets_held():
        for box in chunks(info.grid, chunk_size):
            data, valid = read_window(info, box, src_bands)
            result = np.empty_like(data)
            window_clipped = np.zeros(nb, dtype=np.int64)
            strip_buffer = np.empty((nb, min(STRIP_ROWS, box.height), box.width))  # reused: no page faults per strip
            field_of = None
            if local is not None:  # the window's field, evaluated strip by strip
                at = native_to_grid(info, model.grid, box)
                field_of = window_field(local.fields[i][pos], *at, local.blocks, local.frames[i])
            for strip in range(0, box.height, STRIP_ROWS):  # cache-sized strips: the kernel is memory bound
                rows = slice(strip, min(strip + STRIP_ROWS, box.height))
                field = None if field_of is None else field_of(rows)
                corrected = correct(
                    data[:, rows], gain, offset, field, shift, out=strip_buffer[:, : rows.stop - rows.start]
                )
                cast_part = cast(corrected, valid[:, rows], info.dtype, info.nodata, data[:, rows], result[:, rows])
                window_clipped += cast_part.clipped
                moved += cast_part.moved_off_nodata
            clipped += window_clipped
            summary.add(result, valid)
            fidelity.add(data, result, valid, window_clipped, box.row0)
            mask = np.all(valid, axis=0) if info.has_mask and info.nodata is None else None
            writer.write(box, result, mask)
    return ApplyResult(
        info.name, str(out), clipped.tolist(), moved.tolist(), False, summary.to_list(), fidelity.to_dict()
    )


def apply_model(
    model: RRNModel,
    infos: list[RasterInfo],
    out_dir: Path,
    workers: Workers = 1,
    resume: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress = no_progress,
    fidelity_every: int = SAMPLE_EVERY,
) -> list[ApplyResult]:
    """Write ``out_dir/<name>.tif`` for every input: the corrected COG (pass 2).

    Parameters
    ----------
    model
        The fitted model; ``infos`` must be in model order.
    infos
        The inputs.
    out_dir
        Output folder (must exist).
    workers
        Images corrected concurrently.
    resume
        Skip inputs whose output exists and was made with this model.
    chunk_size
        Window edge in the input's own pixels.
    progress
        Called with ``("apply", done, total)`` after each image.
    fidelity_every
        See :func:`correct_raster`.

    Returns
    -------
    list of ApplyResult
        One per input, in input order.
    """
    digest = model.digest()

    def task(i: int) -> ApplyResult:
        info = infos[i]
        out = out_dir / f"{info.name}.tif"
        if resume and output_is_current(out, info.grid, len(model.bands), info.dtype, digest):
            return ApplyResult(info.name, str(out), [0] * len(model.bands), [0] * len(model.bands), True)
        return correct_raster(model, i, info, out, chunk_size, fidelity_every=fidelity_every)

    results: dict[str, ApplyResult] = {}
    progress("apply", 0, len(infos))
    for done, res in enumerate(imap_bounded(task, range(len(infos)), workers), start=1):
        results[res.name] = res
        progress("apply", done, len(infos))
    return [results[info.name] for info in infos]


def record_outputs(model: RRNModel, results: Sequence[ApplyResult], previous: RRNModel | None = None) -> None:
    """Store what pass 2 measured in ``model.quality`` (the digest does not change).

    Per output: clipped and nodata-avoiding counts (``clipped``, ``moved_off_nodata``),
    fidelity to the input (``fidelity``), and in the per-image table the mean and spread of
    input and output over the same pixels.

    Parameters
    ----------
    model
        The model the outputs were made with.
    results
        Pass 2's results.
    previous
        The same model as recorded by an earlier run: outputs that ``--resume`` kept get
        its figures.
    """
    q = model.quality
    old = previous.quality if previous is not None and previous.digest() == model.digest() else {}
    for r in results:
        clipped, moved, measured = _recorded(old, r) if r.skipped else (r.clipped, r.moved_off_nodata, dict(r.fidelity))
        q.setdefault("clipped", {})[r.name] = clipped
        if moved:  # empty when the results come from items, which do not record it
            q.setdefault("moved_off_nodata", {})[r.name] = moved
        if not measured:
            continue
        q.setdefault("fidelity", {})[r.name] = {k: v for k, v in measured.items() if not k.startswith(PROFILE_KEYS)}
        row = next((row for row in q.get("images", []) if row["name"] == r.name), None)
        if row is not None:
            row.update({k: v for k, v in measured.items() if k.startswith(PROFILE_KEYS)})


def _recorded(quality: dict[str, Any], r: ApplyResult) -> tuple[list[int], list[int], dict[str, Any]]:
    """Clipped and nodata-avoiding counts and fidelity (with profile keys) that ``quality`` holds for ``r``."""
    row: dict[str, Any] = next((row for row in quality.get("images", []) if row["name"] == r.name), {})
    measured = quality.get("fidelity", {}).get(r.name, {}) | {
        k: v for k, v in row.items() if k.startswith(PROFILE_KEYS)
    }
    clipped = quality.get("clipped", {}).get(r.name, r.clipped)
    return clipped, quality.get("moved_off_nodata", {}).get(r.name, r.moved_off_nodata), measured


def _block_grid_of(model: RRNModel, frame: Box) -> Grid:
    """Georeferencing of block values over ``frame`` (block indices), one pixel per block."""
    local = model.local_fit
    assert local is not None
    t = Affine(*model.grid.transform) @ Affine.translation(
        frame.col0 * local.blocks.block_width, frame.row0 * local.blocks.block_height
    )
    t = t @ Affine.scale(local.blocks.block_width, local.blocks.block_height)
    return Grid(model.grid.crs, (t.a, t.b, t.c, t.d, t.e, t.f), frame.width, frame.height)


def field_map(model: RRNModel, i: int) -> tuple[F64, Grid]:
    """Image ``i``'s local gain field ``(bands, rows, cols)``, one pixel per block, and its grid."""
    local = model.local_fit
    if local is None:
        raise ValueError("the model has no local step")
    return local.fields[i], _block_grid_of(model, local.frames[i])


def reference_map(model: RRNModel, stats: Statistics) -> tuple[F64, Grid]:
    """The reference block map (count-weighted mean of corrected block means; NaN outside) and its grid."""
    local = model.local_fit
    if local is None:
        raise ValueError("the model has no local step")
    whole = Box(0, 0, local.blocks.n_rows, local.blocks.n_cols)
    return reference_block_map(stats, model.global_fit, local), _block_grid_of(model, whole)


def write_block_map(path: Path, data: F64, grid: Grid, digest: str, resume: bool = False) -> Path:
    """Write block values as a small float32 COG tagged with the model digest (kept if current with ``resume``)."""
    nodata = float("nan") if np.isnan(data).any() else None
    if not (resume and output_is_current(path, grid, data.shape[0], "float32", digest)):
        write_cog(path, data.astype(np.float32), grid, nodata=nodata, tags={MODEL_TAG: digest})
    return path


def write_block_maps(
    model: RRNModel, stats: Statistics, out_dir: Path, resume: bool = False, workers: Workers = 1
) -> list[Path]:
    """Write each image's local field and the reference block map as small float32 COGs.

    One pixel per block. With ``resume``, block maps already written for this model (same
    digest tag) are kept. ``workers`` threads write them (a Dask cluster's thread count):
    each small COG costs tens of milliseconds of GDAL set-up, which a thousand scenes feel.

    Returns
    -------
    list of Path
        ``out_dir/blockmaps/<name>_field.tif`` per image, then ``out_dir/blockmaps/reference.tif``
        (the count-weighted mean of the corrected block means; NaN outside the images).
        Empty without a local model.
    """
    if model.local_fit is None:
        return []
    folder = out_dir / "blockmaps"
    folder.mkdir(parents=True, exist_ok=True)
    digest = model.digest()

    def write(i: int) -> Path:
        return write_block_map(folder / f"{model.images[i].name}_field.tif", *field_map(model, i), digest, resume)

    paths = list(imap_bounded(write, range(len(model.images)), threads_of(workers)))
    return [*paths, write_block_map(folder / "reference.tif", *reference_map(model, stats), digest, resume)]
