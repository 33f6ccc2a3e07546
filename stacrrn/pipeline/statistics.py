"""Pass 1: read every chunk of the common grid once and merge its moments."""

from __future__ import annotations

import json
from pathlib import Path

from stacrrn.core.pif import holdout_cells
from stacrrn.core.statistics import ChunkStatistics, PairMask, Statistics, chunk_statistics
from stacrrn.io.files import atomic_write_text
from stacrrn.pipeline.parallel import imap_bounded
from stacrrn.pipeline.plan import Plan
from stacrrn.pipeline.progress import Progress, no_progress
from stacrrn.types import Box

STATISTICS_FILE = "stacrrn-statistics.json"


def _chunk_task(plan: Plan, box: Box, pair_mask: PairMask | None, holdout: float) -> ChunkStatistics:
    layers = plan.read_chunk(box, plan.images_in(box))
    held = holdout_cells(box, holdout) if holdout > 0 else None
    return chunk_statistics(box, layers, plan.blocks, plan.pairs, pair_mask, held)


def compute_statistics(
    plan: Plan, workers: int = 1, progress: Progress = no_progress, warnings: list[str] | None = None
) -> Statistics:
    """Compute exact overlap, image and block moments of all inputs (pass 1).

    Parameters
    ----------
    plan
        The run's layout (with its PIF selection and holdout, if any).
    workers
        Number of threads reading and reducing chunks.
    progress
        Called with ``(stage, done, total)`` after each chunk (``pif samples`` then ``statistics``).
    warnings
        Receives warnings of the PIF selection (pairs too small to fit IR-MAD).

    Returns
    -------
    Statistics
        Merged moments; independent of chunking and worker count.
    """
    pair_mask, holdout = None, 0.0
    if plan.pif is not None:
        from stacrrn.pipeline.pifs import prepare_pair_mask

        pair_mask, notes = prepare_pair_mask(plan, plan.pif, workers, progress)
        holdout = plan.pif.options.holdout_share
        if warnings is not None:
            warnings.extend(notes)
    stats = Statistics.empty(len(plan.bands), plan.footprints, plan.blocks)
    total = len(plan.chunks)
    progress("statistics", 0, total)
    tasks = imap_bounded(lambda b: _chunk_task(plan, b, pair_mask, holdout), plan.chunks, workers)
    for done, chunk in enumerate(tasks, start=1):
        stats.add(chunk)
        progress("statistics", done, total)
    return stats


def save_statistics(stats: Statistics, path: Path, fingerprint: str) -> None:
    """Store statistics as JSON tagged with the plan's fingerprint (atomic rename)."""
    atomic_write_text(path, json.dumps({"fingerprint": fingerprint, "statistics": stats.to_dict()}))


def load_statistics(path: Path, fingerprint: str) -> Statistics | None:
    """Load cached statistics if they exist and match ``fingerprint``, else ``None``."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if d.get("fingerprint") != fingerprint:
        return None
    return Statistics.from_dict(d["statistics"])
