"""Pass 2: correct every input window by window and write one COG per input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.errors import RasterioError

from stacrrn.core.correct import cast, correct
from stacrrn.core.local_model import LocalFit, evaluate_field, evaluate_field_on_lattice
from stacrrn.core.metrics import reference_block_map
from stacrrn.core.model import RRNModel
from stacrrn.core.statistics import Statistics
from stacrrn.io.cog import cog_writer, write_cog
from stacrrn.io.grid import chunks, native_to_grid
from stacrrn.io.raster import RasterInfo, read_window
from stacrrn.pipeline.parallel import imap_bounded
from stacrrn.pipeline.plan import DEFAULT_CHUNK
from stacrrn.pipeline.progress import Progress, no_progress
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]

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


def _field_on_window(local: LocalFit, i: int, rows: F64, cols: F64) -> F64:
    """Image ``i``'s gain field at the window's pixels -> ``(bands, rows, cols)``."""
    if rows.ndim == 1:
        return evaluate_field_on_lattice(local.fields[i], rows, cols, local.blocks, local.frames[i])
    values = evaluate_field(local.fields[i], rows.ravel(), cols.ravel(), local.blocks, local.frames[i])
    return values.reshape(-1, *rows.shape)


def _correct_image(model: RRNModel, i: int, info: RasterInfo, out: Path, digest: str, chunk_size: int) -> ApplyResult:
    gain, offset = model.global_fit.gains[i], model.global_fit.offsets[i]
    local = model.local_fit
    nb = len(model.bands)
    clipped = np.zeros(nb, dtype=np.int64)
    moved = np.zeros(nb, dtype=np.int64)
    tags = {MODEL_TAG: digest, "STACRRN_SOURCE": info.path, "STACRRN_METHOD": model.method}
    # inputs masked without a nodata value (alpha band, internal mask) keep their mask
    with cog_writer(out, info.grid, nb, info.dtype, info.nodata, tags) as writer:
        for box in chunks(info.grid, chunk_size):
            data, valid = read_window(info, box, model.bands)
            field, shift = None, None
            if local is not None:
                shift = local.shifts[i]
                field = _field_on_window(local, i, *native_to_grid(info, model.grid, box))
            result = cast(
                correct(data.astype(np.float64), gain, offset, field, shift), valid, info.dtype, info.nodata, data
            )
            clipped += result.clipped
            moved += result.moved_off_nodata
            mask = np.all(valid, axis=0) if info.has_mask and info.nodata is None else None
            writer.write(box, result.data, mask)
    return ApplyResult(info.name, str(out), clipped.tolist(), moved.tolist(), False)


def apply_model(
    model: RRNModel,
    infos: list[RasterInfo],
    out_dir: Path,
    workers: int = 1,
    resume: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress = no_progress,
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
        return _correct_image(model, i, info, out, digest, chunk_size)

    results: dict[str, ApplyResult] = {}
    progress("apply", 0, len(infos))
    for done, res in enumerate(imap_bounded(task, range(len(infos)), workers), start=1):
        results[res.name] = res
        progress("apply", done, len(infos))
    return [results[info.name] for info in infos]


def write_block_maps(model: RRNModel, stats: Statistics, out_dir: Path, resume: bool = False) -> list[Path]:
    """Write each image's local field and the reference block map as small float32 COGs.

    One pixel per block. With ``resume``, block maps already written for this model (same
    digest tag) are kept.

    Returns
    -------
    list of Path
        ``out_dir/blockmaps/<name>_field.tif`` per image, then ``out_dir/blockmaps/reference.tif``
        (the count-weighted mean of the corrected block means; NaN outside the images).
        Empty without a local model.
    """
    local = model.local_fit
    if local is None:
        return []
    folder = out_dir / "blockmaps"
    folder.mkdir(parents=True, exist_ok=True)
    digest = model.digest()

    def write(path: Path, data: F64, frame: Box, nodata: float | None = None) -> Path:
        """Write block values over ``frame`` (block indices), one pixel per block."""
        t = Affine(*model.grid.transform) @ Affine.translation(
            frame.col0 * local.blocks.block_width, frame.row0 * local.blocks.block_height
        )
        t = t @ Affine.scale(local.blocks.block_width, local.blocks.block_height)
        grid = Grid(model.grid.crs, (t.a, t.b, t.c, t.d, t.e, t.f), frame.width, frame.height)
        if not (resume and output_is_current(path, grid, data.shape[0], "float32", digest)):
            write_cog(path, data.astype(np.float32), grid, nodata=nodata, tags={MODEL_TAG: digest})
        return path

    paths = [
        write(folder / f"{im.name}_field.tif", field, frame)
        for im, frame, field in zip(model.images, local.frames, local.fields, strict=True)
    ]
    whole = Box(0, 0, local.blocks.n_rows, local.blocks.n_cols)
    reference = reference_block_map(stats, model.global_fit, local)
    return [*paths, write(folder / "reference.tif", reference, whole, nodata=float("nan"))]
