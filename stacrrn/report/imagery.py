"""Pictures of the imagery itself: before/after quick-looks of each image and of the whole mosaic.

Pure functions of arrays returning matplotlib Figures (see :mod:`stacrrn.report.figures`).
Every picture of a figure shares one stretch, so that a change of colour between before and
after is the correction, not the display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

F64 = NDArray[np.float64]

Extent = tuple[float, float, float, float]
"""``(left, right, bottom, top)`` in a CRS, as matplotlib's ``imshow`` takes it."""


@dataclass(frozen=True)
class BeforeAfter:
    """Previews of one image ``(bands, rows, cols)`` before and after (``None`` when unavailable)."""

    name: str
    before: F64 | None
    after: F64 | None


def bare(ax: Axes, title: str) -> None:
    """An image panel without ticks (its extent still places it in the grid's CRS)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def stretch_limits(values: F64, low: float = 2.0, high: float = 98.0) -> tuple[F64, F64]:
    """Per-band ``low`` and ``high`` percentiles over valid pixels (``(bands,)`` each)."""
    lo = np.full(values.shape[0], np.nan)
    hi = np.full(values.shape[0], np.nan)
    for k, band in enumerate(values):
        valid = band[np.isfinite(band)]
        if valid.size:
            lo[k], hi[k] = np.percentile(valid, [low, high])
    return lo, hi


def to_rgba(values: F64, lo: F64, hi: F64) -> F64:
    """Stretch 1 or 3 bands ``(bands, rows, cols)`` to an RGBA image, transparent where invalid.

    Band 0 goes to red, 1 to green and 2 to blue (one band: grey).
    """
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.clip((values - lo[:, None, None]) / span[:, None, None], 0.0, 1.0)
    rgb = np.repeat(scaled, 3, axis=0) if values.shape[0] == 1 else scaled[:3]
    alpha = np.all(np.isfinite(values), axis=0)[None].astype(np.float64)
    return np.asarray(np.nan_to_num(np.concatenate([rgb, alpha]).transpose(1, 2, 0)), dtype=np.float64)


def quicklooks(
    images: Sequence[BeforeAfter],
    bands: Sequence[int],
    titles: Sequence[str] | None = None,
    limits: tuple[F64, F64] | None = None,
) -> Figure:
    """Before and after previews of each image side by side, with the same stretch.

    The 2-98 % stretch of each band is computed on the image before (after when the before
    preview is missing) and applied to both, so the correction shows as a change of colour.

    Parameters
    ----------
    images
        Previews per image (all bands).
    bands
        Positions of the bands shown: three (on R, G, B, in this order) or one (grey).
    titles
        Row titles (default the image names).
    limits
        One stretch ``(low, high)`` per shown band for every image instead (e.g. from
        :func:`stretch_limits` of a reference image): then the corrected images look alike.

    Returns
    -------
    Figure
        Two axes per image; one AxesImage per available preview.
    """
    rows = max(len(images), 1)
    fig = Figure(figsize=(8, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    chosen = list(bands)
    for (ax_before, ax_after), im, title in zip(axes, images, titles or [im.name for im in images], strict=False):
        base = im.before if im.before is not None else im.after
        if limits is not None:
            lo, hi = limits
        else:
            lo, hi = stretch_limits(base[chosen]) if base is not None else (np.zeros(1), np.ones(1))
        for ax, values, when in ((ax_before, im.before, "before"), (ax_after, im.after, "after")):
            bare(ax, f"{title} {when}")
            if values is None:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.imshow(to_rgba(values[chosen], lo, hi), interpolation="nearest")
    return fig


def mosaic_pair(before: F64 | None, after: F64 | None, extent: Extent, band_text: str = "") -> Figure:
    """The whole mosaic before and after, side by side, with one stretch from the mosaic after.

    Parameters
    ----------
    before, after
        Mosaics ``(1 or 3 bands, rows, cols)`` on the same canvas, NaN where no image is
        (``None`` when no raster could be read).
    extent
        ``(left, right, bottom, top)`` of the canvas.
    band_text
        Which bands are shown (for the titles), e.g. ``R: red, G: green, B: blue``.

    Returns
    -------
    Figure
        Two axes (before, after), each with an AxesImage when its mosaic is known.
    """
    left, right, bottom, top = extent
    aspect = min(max((top - bottom) / (right - left), 0.25), 2.0) if right > left else 1.0
    fig = Figure(figsize=(11, 5.5 * aspect + 0.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    shown = [m for m in (after, before) if m is not None]
    lo, hi = stretch_limits(shown[0]) if shown else (np.zeros(1), np.ones(1))
    for ax, values, title in zip(axes, (before, after), ("before (inputs)", "after (outputs)"), strict=True):
        bare(ax, f"mosaic {title}" + (f", {band_text}" if band_text else ""))
        ax.set_facecolor("0.85")
        if values is None:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.imshow(to_rgba(values, lo, hi), extent=extent, interpolation="nearest")
    axes[0].set_xlim(left, right)
    axes[0].set_ylim(bottom, top)
    return fig
