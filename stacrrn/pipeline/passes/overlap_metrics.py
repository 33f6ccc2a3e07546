"""Pixelwise agreement of overlapping images before and after the model (an optional pass).

The moments of pass 1 give the overlap RMSE of a global model exactly; the local step and
the mean absolute error need the pixels. This pass reads the chunks where two images of
the model's pairs meet, corrects them with the model as pass 2 would (without rounding to
the output type), and sums the differences of every pair, before and after.

By default it runs when the pairs' overlaps hold no more pixels than the images themselves
(:func:`worth_comparing`): a mosaic's overlaps are a fraction of its images, while every
pixel of a time series lies in several pairs and the pass would read it all again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import Any

from stacrrn.core.metrics import OverlapDifferences
from stacrrn.core.model import RRNModel
from stacrrn.core.statistics import Layer, Statistics
from stacrrn.pipeline.execution.parallel import Workers, imap_bounded
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.inputs.plan import Plan, in_chunk_order
from stacrrn.pipeline.passes.apply import LayerNormalizer, layer_normalizer
from stacrrn.pipeline.passes.statistics import MAX_CHUNK_IMAGES, chunk_runs_of, held_if_few
from stacrrn.types import Box

Pair = tuple[int, int]


def worth_comparing(stats: Statistics) -> bool:
    """Whether the default is to run the pass: overlap pixels of all pairs <= valid pixels of all images."""
    return sum(stats.overlaps.values()) <= sum(m.n for m in stats.images)


def record_overlap_pixels(
    plan: Plan,
    model: RRNModel,
    stats: Statistics,
    wanted: bool | None,
    workers: Workers = 1,
    progress: Progress = no_progress,
) -> None:
    """Run :func:`overlap_pixel_metrics` over the model's pairs into ``model.quality["overlap_pixels"]``.

    ``wanted`` ``None`` runs it where :func:`worth_comparing` says so.
    """
    if wanted or (wanted is None and worth_comparing(stats)):
        model.quality["overlap_pixels"] = overlap_pixel_metrics(plan, model, stats.pairs.keys(), workers, progress)


RISE = 0.01
"""A pixelwise overlap RMSE this much (relative) above its value before the model gets explained."""


def pixel_rise_warnings(model: RRNModel, labels: Sequence[str] | None = None) -> list[str]:
    """Explain bands whose pixelwise overlap RMSE rose while their block means came to agree.

    The model matches the overlaps' block statistics; pixels that differ for real (clouds the
    masks missed, shadows, land change between dates) keep differing after any radiometric
    correction, and a gain that stretches them can raise the pixelwise error. One line per
    such band, with both numbers.
    """
    pixels, q = model.quality.get("overlap_pixels"), model.quality
    if not pixels:
        return []
    lines = []
    for k, band in enumerate(model.bands):
        before, after = pixels["before"]["rmse"][k], pixels["after"]["rmse"][k]
        blocks_before, blocks_after = q["before"]["block_mean_diff"][k], q["after"]["block_mean_diff"][k]
        if None in (before, after, blocks_before, blocks_after) or after <= before * (1 + RISE):
            continue
        if blocks_after >= blocks_before:
            continue
        label = labels[k] if labels else str(band)
        lines.append(
            f"band {label}: pixelwise overlap RMSE rose ({before:.4g} -> {after:.4g}) while the overlaps' block "
            f"means came to agree ({blocks_before:.4g} -> {blocks_after:.4g} RMS difference): pixels that differ "
            "for real (clouds or shadows the masks missed, land change between dates) dominate the pixelwise "
            "error; mask them (--cloud-mask, --mask, --pif) to measure the stable ground"
        )
    return lines


def overlap_pixel_metrics(
    plan: Plan,
    model: RRNModel,
    pairs: Collection[Pair],
    workers: Workers = 1,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Pixelwise overlap RMSE and MAE per band, before and after ``model``, over ``pairs``.

    Parameters
    ----------
    plan
        The run's layout (the same reader, masks included, as pass 1).
    model
        The fitted model.
    pairs
        The pairs ``(i, j)``, ``i < j``, to compare (those the model was fitted on).
    workers
        Threads, or a Dask cluster, reading and reducing chunks.
    progress
        Called with ``("overlaps", done, total)`` after each chunk.

    Returns
    -------
    dict
        ``{"before": {"rmse", "mae", "pixels"}, "after": {...}}``, per band; every pixel
        valid in both images of a pair counts once per pair.
    """
    wanted = frozenset(pairs)
    todo = [(box, job) for box in plan.chunks if (job := _overlap_job(plan, box, wanted))]
    normalize = layer_normalizer(plan, model)
    n_bands = len(plan.bands)

    def task(run: list[tuple[Box, dict[Pair, Box]]]) -> list[tuple[OverlapDifferences, OverlapDifferences]]:
        with held_if_few(plan, [box for box, _ in run]):  # neighbours share the decoded tiles of unaligned scenes
            return [_chunk_differences(plan, normalize, n_bands, job) for _, job in run]

    boxes = [box for box, _ in todo]
    runs = chunk_runs_of(plan, boxes, workers)
    before, after = OverlapDifferences.empty(n_bands), OverlapDifferences.empty(n_bands)
    progress("overlaps", 0, len(todo))
    results = imap_bounded(lambda run: task([todo[k] for k in run]), runs, workers)
    for done, (b, a) in enumerate(in_chunk_order(runs, results), start=1):  # summed in chunk order
        before.merge(b)
        after.merge(a)
        progress("overlaps", done, len(todo))
    return {"before": before.to_dict(), "after": after.to_dict()}


def _overlap_job(plan: Plan, chunk: Box, wanted: frozenset[Pair]) -> dict[Pair, Box]:
    """The wanted pairs that overlap in ``chunk``, each with its overlap there (grid pixels)."""
    images = plan.images_in(chunk)
    job = {}
    for k, i in enumerate(images):
        for j in images[k + 1 :]:
            part = plan.footprints[i].intersect(plan.footprints[j]).intersect(chunk)
            if (i, j) in wanted and not part.empty:
                job[(i, j)] = part
    return job


def _bounds(boxes: list[Box]) -> Box:
    return Box(
        min(b.row0 for b in boxes), min(b.col0 for b in boxes), max(b.row1 for b in boxes), max(b.col1 for b in boxes)
    )


def _within(layer: Layer, region: Box, part: Box) -> Layer:
    """The pixels of ``part`` from a layer read over ``region``."""
    rows = slice(part.row0 - region.row0, part.row1 - region.row0)
    cols = slice(part.col0 - region.col0, part.col1 - region.col0)
    values, valid = layer
    return values[..., rows, cols], valid[..., rows, cols]


def _chunk_differences(
    plan: Plan, normalize: LayerNormalizer, n_bands: int, job: dict[Pair, Box]
) -> tuple[OverlapDifferences, OverlapDifferences]:
    """Sum one chunk's pair differences over each pair's overlap only.

    Each image is read (and corrected) once over the bounding box of its overlaps in the
    chunk; at most ``MAX_CHUNK_IMAGES`` images are held at once (time series).
    """
    regions = {i: _bounds([part for pair, part in job.items() if i in pair]) for pair in job for i in pair}
    held: OrderedDict[int, tuple[Layer, Layer]] = OrderedDict()

    def layers(i: int) -> tuple[Layer, Layer]:
        if i in held:
            held.move_to_end(i)
            return held[i]
        raw = plan.read_chunk(regions[i], [i])[i]
        held[i] = (raw, normalize(regions[i], {i: raw})[i])
        if len(held) > MAX_CHUNK_IMAGES:
            held.popitem(last=False)
        return held[i]

    before, after = OverlapDifferences.empty(n_bands), OverlapDifferences.empty(n_bands)
    for (i, j), part in job.items():
        (ri, ci), (rj, cj) = layers(i), layers(j)
        for total, li, lj in ((before, ri, rj), (after, ci, cj)):
            (xi, vi), (xj, vj) = _within(li, regions[i], part), _within(lj, regions[j], part)
            total.add(xi, vi, xj, vj)
    return before, after
