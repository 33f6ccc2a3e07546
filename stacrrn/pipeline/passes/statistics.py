"""Pass 1: read every chunk of the common grid once and merge its moments."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from stacrrn.core.pif import holdout_cells
from stacrrn.core.statistics import (
    ChunkStatistics,
    PairMask,
    Statistics,
    chunk_statistics,
    streamed_chunk_statistics,
)
from stacrrn.errors import ImagesUnreadableError as ImagesUnreadableError  # defined with the error tree
from stacrrn.errors import ParameterError, StacrrnError, UnreadableRasterError, report
from stacrrn.io.raster import datasets_held
from stacrrn.io.statistics_file import read_statistics, write_statistics
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded, threads_of
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.plan import CHUNK_IMAGES, Plan, chunk_runs, in_chunk_order
from stacrrn.types import Box

STATISTICS_FILE = "stacrrn-statistics.npz"
"""The pass-1 cache beside a run's outputs (:mod:`stacrrn.io.statistics_file`); an older ``.json`` one is ignored."""


MAX_CHUNK_IMAGES = CHUNK_IMAGES
"""Images of one chunk held in memory at once; chunks under more images (time series) are streamed.
The plan's chunks meet at most this many images wherever smaller chunks can make it so."""


def _chunk_task(plan: Plan, box: Box, pair_mask: PairMask | None, holdout: float) -> ChunkStatistics:
    try:
        return _chunk_moments(plan, box, pair_mask, holdout)
    except UnreadableRasterError as exc:
        culprits = {}
        for i in plan.images_in(box):  # read alone, which ones fail? (only after a failure)
            try:
                plan.read_chunk(box, [i])
            except StacrrnError as failed:
                culprits[i] = report(failed).message
        raise ImagesUnreadableError(str(exc), culprits) from None


def holds_rasters(plan: Plan, box: Box) -> bool:
    """Whether a chunk's rasters are held open while it is read: it meets at most :data:`MAX_CHUNK_IMAGES` images.

    A mosaic's chunks do, and share decoded tiles with their neighbours; a time series'
    chunks read every date, aligned with the grid, and holding them costs memory for nothing.
    """
    return len(plan.images_in(box)) <= MAX_CHUNK_IMAGES


def chunk_runs_of(plan: Plan, boxes: Sequence[Box], workers: Workers) -> list[list[int]]:
    """:func:`~stacrrn.pipeline.inputs.plan.chunk_runs` for ``workers``, held where :func:`holds_rasters`."""
    return chunk_runs(boxes, threads_of(workers), [holds_rasters(plan, box) for box in boxes])


def held_if_few(plan: Plan, boxes: Sequence[Box]) -> AbstractContextManager[None]:
    """:func:`~stacrrn.io.raster.datasets_held` while ``boxes`` are read if every one :func:`holds_rasters`."""
    return datasets_held() if all(holds_rasters(plan, box) for box in boxes) else nullcontext()


def _run_task(plan: Plan, run: list[Box], pair_mask: PairMask | None, holdout: float) -> list[ChunkStatistics]:
    with held_if_few(plan, run):
        return [_chunk_task(plan, box, pair_mask, holdout) for box in run]


def _chunk_moments(plan: Plan, box: Box, pair_mask: PairMask | None, holdout: float) -> ChunkStatistics:
    images = plan.images_in(box)
    held = holdout_cells(box, holdout) if holdout > 0 else None
    if len(images) <= MAX_CHUNK_IMAGES:
        return chunk_statistics(box, plan.read_chunk(box, images), plan.blocks, plan.pairs, pair_mask, held)
    return streamed_chunk_statistics(
        box,
        images,
        lambda i: plan.read_chunk(box, [i])[i],
        plan.blocks,
        plan.pairs,
        pair_mask,
        held,
        MAX_CHUNK_IMAGES,
    )


def tile_chunks(n_chunks: int, tile: int, tiles: int) -> range:
    """Indices of the chunks in tile ``tile`` of ``tiles``: contiguous runs of the plan's chunks.

    Raises
    ------
    ParameterError
        Unless ``0 <= tile < tiles``.
    """
    if not 0 <= tile < tiles:
        raise ParameterError(f"tile {tile} is not one of {tiles} tiles (0..{tiles - 1})")
    return range(tile * n_chunks // tiles, (tile + 1) * n_chunks // tiles)


def chunk_statistics_of(
    plan: Plan,
    indices: Sequence[int] | None = None,
    workers: Workers = 1,
    progress: Progress = no_progress,
    warnings: list[str] | None = None,
) -> Iterator[ChunkStatistics]:
    """Moments of the plan's chunks (all, or those at ``indices``), in chunk order (pass 1).

    Parameters
    ----------
    plan
        The run's layout (with its PIF selection and holdout, if any).
    indices
        Chunk indices to read (default all), e.g. one tile's (:func:`tile_chunks`).
    workers
        Threads, or a Dask cluster, reading and reducing chunks.
    progress
        Called with ``(stage, done, total)`` after each chunk (``pif samples`` then ``statistics``).
    warnings
        Receives warnings of the PIF selection (pairs too small to fit IR-MAD).

    Yields
    ------
    ChunkStatistics
        One per chunk, in the order of ``indices``.
    """
    pair_mask, holdout = None, 0.0
    if plan.pif is not None:
        from stacrrn.pipeline.masks.pifs import prepare_pair_mask

        pair_mask, notes = prepare_pair_mask(plan, plan.pif, workers, progress)
        holdout = plan.pif.options.holdout_share
        if warnings is not None:
            warnings.extend(notes)
    boxes = plan.chunks if indices is None else [plan.chunks[k] for k in indices]
    progress("statistics", 0, len(boxes))
    runs = chunk_runs_of(plan, boxes, workers)
    tasks = imap_bounded(lambda run: _run_task(plan, [boxes[k] for k in run], pair_mask, holdout), runs, workers)
    for done, chunk in enumerate(in_chunk_order(runs, tasks), start=1):
        yield chunk
        progress("statistics", done, len(boxes))


def merge_chunks(plan: Plan, chunks: Iterable[ChunkStatistics]) -> Statistics:
    """Sum chunk moments in the order given into the run's statistics."""
    stats = Statistics.empty(len(plan.bands), plan.footprints, plan.blocks)
    for chunk in chunks:
        stats.add(chunk)
    return stats


def compute_statistics(
    plan: Plan, workers: Workers = 1, progress: Progress = no_progress, warnings: list[str] | None = None
) -> Statistics:
    """Compute exact overlap, image and block moments of all inputs (pass 1).

    Chunk moments are summed in chunk order whatever runs them, so the result is the same
    bit for bit for any number of threads, on a Dask cluster, or tile by tile through the
    serverless handlers. Arguments as for :func:`chunk_statistics_of`.

    Returns
    -------
    Statistics
        Merged moments; independent of chunking and workers.
    """
    return merge_chunks(plan, chunk_statistics_of(plan, None, workers, progress, warnings))


def save_statistics(stats: Statistics, path: Path, fingerprint: str) -> None:
    """Store statistics as an ``.npz`` archive tagged with the plan's fingerprint (atomic rename)."""
    write_statistics(path, stats, fingerprint)


def load_statistics(path: Path, fingerprint: str) -> Statistics | None:
    """Load cached statistics if they exist and match ``fingerprint``, else ``None`` (also when damaged)."""
    return read_statistics(path, fingerprint)
