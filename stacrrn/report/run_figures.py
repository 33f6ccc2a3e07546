"""The report's figures drawn from a loaded run (:class:`RunOutputs`): one call per figure.

These are the functions a notebook calls after :func:`~stacrrn.report.run_outputs.load_run`;
they read what they need (decimated previews, footprints, block maps) and hand arrays to
the pure drawing functions of :mod:`stacrrn.report.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from stacrrn.errors import ParameterError, UnreadableRasterError
from stacrrn.report.figures import (
    BeforeAfter,
    block_maps,
    local_gain_maps,
    mosaic_pair,
    overlap_graph,
    quicklooks,
    spectral_profiles,
    stretch_limits,
)
from stacrrn.report.mosaic import MOSAIC_SIZE, canvas_of, grid_extent, read_mosaic
from stacrrn.report.rasters import (
    F64,
    PREVIEW_SIZE,
    band_means,
    block_pixels,
    field_maps,
    footprint,
    frame_outlines,
    gain_mosaic,
    gain_spread,
    pixel_ring,
    read_block_map,
    read_preview,
    ring_extent,
)
from stacrrn.report.run_outputs import BandSource, RunOutputs, datetimes
from stacrrn.types import Box

RGB = ("red", "green", "blue")
MAX_MOSAIC_IMAGES = 500
"""The before/after mosaic paints at most this many images (the first in model order)."""


def _preview(sources: tuple[BandSource, ...], target: int, notes: list[str]) -> F64 | None:
    if not sources:
        return None
    try:
        return read_preview(sources, target)
    except UnreadableRasterError as exc:
        notes.append(str(exc))
        return None


def read_previews(
    outputs: RunOutputs, images: Sequence[int] | None = None, target: int = PREVIEW_SIZE, notes: list[str] | None = None
) -> list[BeforeAfter]:
    """Decimated before/after previews (all model bands) of the chosen images (default all).

    Parameters
    ----------
    outputs
        The loaded run.
    images
        Indices of the images to read, default all.
    target
        Smallest longer side of a preview, in pixels.
    notes
        Receives a line per raster that could not be read (its preview is then ``None``).
    """
    notes = notes if notes is not None else []
    chosen = range(len(outputs.images)) if images is None else images
    return [
        BeforeAfter(
            outputs.images[i].name,
            _preview(outputs.images[i].before, target, notes),
            _preview(outputs.images[i].after, target, notes),
        )
        for i in chosen
    ]


def profile_means(outputs: RunOutputs, previews: Sequence[BeforeAfter] | None = None) -> tuple[F64, F64]:
    """Mean of every image and band ``(images, bands)`` before and after.

    From the model's per-image quality table (``mean_before``/``mean_after``) when present,
    else from the decimated previews (read here when not given). NaN where unknown.
    """
    n, nb = len(outputs.images), len(outputs.band_labels)
    before, after = np.full((n, nb), np.nan), np.full((n, nb), np.nan)
    records = {r.get("name"): r for r in outputs.model.quality.get("images", []) if isinstance(r, dict)}
    missing = []
    for i, im in enumerate(outputs.images):
        r = records.get(im.name, {})
        if _per_band(r.get("mean_before"), nb) and _per_band(r.get("mean_after"), nb):
            before[i], after[i] = r["mean_before"], r["mean_after"]
        else:
            missing.append(i)
    if missing:
        previews = read_previews(outputs, missing) if previews is None else [previews[i] for i in missing]
        for i, p in zip(missing, previews, strict=True):
            if p.before is not None:
                before[i] = band_means(p.before)
            if p.after is not None:
                after[i] = band_means(p.after)
    return before, after


def _per_band(values: object, nb: int) -> bool:
    return (
        isinstance(values, list) and len(values) == nb and all(v is None or isinstance(v, int | float) for v in values)
    )


def profile_figure(outputs: RunOutputs, previews: Sequence[BeforeAfter] | None = None) -> Figure:
    """Mean spectral profiles of every image before and after (see :func:`spectral_profiles`)."""
    before, after = profile_means(outputs, previews)
    names = [im.name for im in outputs.images]
    return spectral_profiles(names, before, after, display_labels(outputs), outputs.model.references)


def display_labels(outputs: RunOutputs) -> list[str]:
    """Band labels for axes: ``label (name)`` where a band's common name differs from its label."""
    names = outputs.band_names or (None,) * len(outputs.band_labels)
    return [
        label if not name or name == label else f"{label} ({name})"
        for label, name in zip(outputs.band_labels, names, strict=False)
    ]


def footprints(outputs: RunOutputs, notes: list[str] | None = None) -> list[F64 | None]:
    """Every image's raster outline in the model grid's CRS (``None`` when no raster is readable)."""
    out: list[F64 | None] = []
    for im in outputs.images:
        sources = im.before or im.after
        ring = None
        if sources:
            try:
                ring = footprint(sources[0].href, outputs.model.grid.crs)
            except UnreadableRasterError as exc:
                if notes is not None:
                    notes.append(str(exc))
        out.append(ring)
    return out


def overlap_pairs(outputs: RunOutputs) -> list[tuple[int, int, float]]:
    """``(i, j, used pixels)`` of every overlapping pair in the model's pair table."""
    index = {im.name: i for i, im in enumerate(outputs.images)}
    out = []
    for r in outputs.model.quality.get("pairs", []):
        a, b = (r.get("images") or [None, None])[:2]
        if a in index and b in index and (r.get("overlap_pixels", 0) > 0 or r.get("used_pixels", 0) > 0):
            out.append((index[a], index[b], float(r.get("used_pixels", 0))))
    return out


def overlap_figure(outputs: RunOutputs, notes: list[str] | None = None) -> Figure:
    """The overlap graph over the footprints (see :func:`overlap_graph`)."""
    model = outputs.model
    return overlap_graph(
        [im.name for im in outputs.images],
        footprints(outputs, notes),
        overlap_pairs(outputs),
        model.references,
        model.global_fit.isolated,
    )


def block_map_band(outputs: RunOutputs) -> int:
    """The band whose local fields depart most from 1 (0 without a local step)."""
    local = outputs.model.local_fit
    if local is None or not local.fields:
        return 0
    return int(np.argmax(gain_spread(local)))


def block_map_figure(outputs: RunOutputs, band: int | None = None, notes: list[str] | None = None) -> Figure | None:
    """Each image's local gain field and the reference block map of one band (``None`` without a local step).

    Parameters
    ----------
    outputs
        The loaded run.
    band
        Position of the band in the model (default :func:`block_map_band`).
    notes
        Receives a line when the reference block map cannot be read.
    """
    if outputs.model.local_fit is None:
        return None
    k = block_map_band(outputs) if band is None else band
    reference = None
    if outputs.reference_map:
        try:
            reference = read_block_map(outputs.reference_map, k)
        except UnreadableRasterError as exc:
            if notes is not None:
                notes.append(str(exc))
    return block_maps(field_maps(outputs.model, k), reference, display_labels(outputs)[k])


def local_gain_figure(outputs: RunOutputs) -> Figure | None:
    """Every band's local gain over the whole mosaic (see :func:`local_gain_maps`); ``None`` without a local step.

    Block-level: each image's field nodes placed on the model's block grid (where frames
    overlap, the gain with the largest ``|log g|``), with each image's frame outlined.
    Reads nothing.
    """
    model = outputs.model
    if model.local_fit is None:
        return None
    blocks = model.local_fit.blocks
    whole = block_pixels(model, Box(0, 0, blocks.n_rows, blocks.n_cols), clip=False)
    return local_gain_maps(
        gain_mosaic(model.local_fit),
        ring_extent(pixel_ring(model, whole)),
        display_labels(outputs),
        frame_outlines(model),
        ring_extent(pixel_ring(model, model.grid.box)),
    )


def rgb_bands(outputs: RunOutputs, rgb: Sequence[str] | None = None) -> list[int]:
    """Positions of the bands of a quick-look: three (R, G, B) or one (grey).

    Parameters
    ----------
    outputs
        The loaded run.
    rgb
        One or three bands, each a band label, common name or 1-based position in the model's
        bands; default the bands named red, green and blue, else the first three (or the first).

    Raises
    ------
    ParameterError
        If a band is not one of the run's, or not one or three are given.
    """
    labels = [lb.lower() for lb in outputs.band_labels]
    names = _names(outputs)
    if rgb is None:
        if all(c in names for c in RGB):
            return [names.index(c) for c in RGB]
        return [0, 1, 2] if len(labels) >= 3 else [0]
    if len(rgb) not in (1, 3):
        raise ParameterError(f"--rgb {','.join(rgb)}: give three bands (R,G,B) or one (grey)")
    return [_band_position(str(token).strip().lower(), labels, names) for token in rgb]


def _names(outputs: RunOutputs) -> list[str]:
    """Lower-case common name of every band, ``""`` where unknown."""
    names = [(n or "").lower() for n in outputs.band_names]
    return names + [""] * (len(outputs.band_labels) - len(names))


def rgb_caption(outputs: RunOutputs, rgb: Sequence[str] | None = None) -> str:
    """Which bands a quick-look shows on R, G and B (or in grey), and why those.

    Raises
    ------
    ParameterError
        As :func:`rgb_bands`.
    """
    bands = rgb_bands(outputs, rgb)
    labels = display_labels(outputs)
    shown = f"grey: {labels[bands[0]]}" if len(bands) == 1 else ", ".join(
        f"{c}: {labels[b]}" for c, b in zip("RGB", bands, strict=True)
    )  # fmt: skip
    if rgb is not None:
        return f"{shown} (as asked)"
    if all(c in _names(outputs) for c in RGB):
        return f"{shown} (by their common names)"
    which = "the first three bands" if len(bands) == 3 else "the first band"
    return (
        f"{shown} ({which}: no bands have the common names red, green and blue; choose others with --rgb, "
        "or rgb= of build_report)"
    )


def _band_position(token: str, labels: list[str], names: list[str]) -> int:
    if token in labels:
        return labels.index(token)
    if token in names:
        return names.index(token)
    if token.isdigit() and 1 <= int(token) <= len(labels):
        return int(token) - 1
    raise ParameterError(f"--rgb: band {token!r} is not one of the run's bands ({', '.join(labels)})")


def quicklook_figure(
    outputs: RunOutputs,
    rgb: Sequence[str] | None = None,
    previews: Sequence[BeforeAfter] | None = None,
    images: Sequence[int] | None = None,
) -> Figure:
    """Before/after quick-looks of the chosen images (default all) with one stretch for all (:func:`common_limits`).

    Parameters
    ----------
    outputs
        The loaded run.
    rgb
        Bands shown (see :func:`rgb_bands`).
    previews
        Previews of ``images`` (read here when not given).
    images
        Indices of the images shown, default all.
    """
    chosen = list(range(len(outputs.images))) if images is None else list(images)
    shown = list(previews) if previews is not None else read_previews(outputs, chosen)
    when = datetimes(outputs)
    titles = [outputs.images[i].name + (f" ({d[:10]})" if (d := when[i]) else "") for i in chosen]
    bands = rgb_bands(outputs, rgb)
    return quicklooks(shown, bands, titles, common_limits(shown, bands))


def common_limits(previews: Sequence[BeforeAfter], bands: Sequence[int]) -> tuple[F64, F64] | None:
    """One 2-98 % stretch per shown band over every corrected preview (``None`` without any).

    Shared by all images before and after: the inputs' disagreement shows before, and the
    corrected images should look alike after.
    """
    after = [p.after[list(bands)].reshape(len(bands), -1) for p in previews if p.after is not None]
    return stretch_limits(np.concatenate(after, axis=1)) if after else None


def mosaic_figure(
    outputs: RunOutputs, rgb: Sequence[str] | None = None, notes: list[str] | None = None, size: int = MOSAIC_SIZE
) -> Figure:
    """The whole mosaic before and after at low resolution, side by side (see :func:`mosaic_pair`).

    Both are painted on the model's grid decimated to ``size`` pixels (:func:`canvas_of`),
    the first image in model order on top, from decimated reads of the inputs and outputs.

    Parameters
    ----------
    outputs
        The loaded run.
    rgb
        Bands shown (see :func:`rgb_bands`).
    notes
        Receives a line per raster that could not be read, or when images were left out.
    size
        Longer side of the mosaic in pixels, at most.
    """
    bands = rgb_bands(outputs, rgb)
    canvas = canvas_of(outputs.model.grid, size)
    images = outputs.images[:MAX_MOSAIC_IMAGES]
    if len(images) < len(outputs.images) and notes is not None:
        notes.append(f"the mosaic shows the first {len(images)} of {len(outputs.images)} images")
    before = read_mosaic([tuple(im.before[b] for b in bands) if im.before else () for im in images], canvas, notes)
    after = read_mosaic([tuple(im.after[b] for b in bands) if im.after else () for im in images], canvas, notes)
    labels = display_labels(outputs)
    text = f"grey: {labels[bands[0]]}" if len(bands) == 1 else "RGB " + "/".join(labels[b] for b in bands)
    return mosaic_pair(before, after, grid_extent(canvas), text)
