"""The report's figures: pure functions of arrays and names returning matplotlib Figures.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg when saved), never
through pyplot's global state, so they are safe in threads and servers. In a notebook a
returned figure displays inline; :func:`figure_png` turns one into PNG bytes. Pictures of
the imagery (quick-looks, the mosaic) live in :mod:`stacrrn.report.imagery`, re-exported here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from numpy.typing import NDArray

from stacrrn.report.imagery import BeforeAfter, bare, mosaic_pair, quicklooks, stretch_limits, to_rgba
from stacrrn.report.rasters import NO_CORRECTION, BlockMap, Extent, GainMosaic

F64 = NDArray[np.float64]

REFERENCE_COLOUR = "#d62728"
EDGE_CMAP = "viridis"
GAIN_CMAP = "RdBu_r"
GAIN_SCALE_FLOOR = 0.005
"""Smallest half-range of a gain colour scale (± 0.5 %): departures well below it stay pale.

A gain of 1.005 moves a value by half a per cent: about one grey level of an 8-bit display
of the stretched image, and below the relative calibration differences between scenes that
radiometric normalization is there to remove. Float noise (1 ± 1e-8) is then white, not the
full red-to-blue range.
"""
NO_IMAGE_COLOUR = "0.82"
MAX_LEGEND = 40
"""Profiles of at most this many images get a legend (below the plots, never over them)."""

__all__ = [
    "BeforeAfter",
    "block_maps",
    "figure_png",
    "local_gain_maps",
    "mosaic_pair",
    "node_positions",
    "overlap_graph",
    "quicklooks",
    "spectral_profiles",
    "stretch_limits",
    "to_rgba",
]


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure (rendered with Agg)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def spectral_profiles(
    names: Sequence[str],
    before: F64,
    after: F64,
    band_labels: Sequence[str],
    references: Sequence[int] = (),
) -> Figure:
    """Mean spectral profile of every image before and after, two panels sharing the y axis.

    Parameters
    ----------
    names
        Image names (one line each).
    before, after
        Mean values ``(images, bands)``; NaN where unknown.
    band_labels
        Label of each band (x axis).
    references
        Indices of reference images (drawn thicker, dashed).

    Returns
    -------
    Figure
        Two axes, each with one line per image.
    """
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    x = np.arange(len(band_labels))
    colours = _colours(len(names))
    for ax, values, title in zip(axes, (before, after), ("before", "after"), strict=True):
        for i, name in enumerate(names):
            ref = i in references
            ax.plot(
                x, values[i], marker="o", ms=3, lw=2.5 if ref else 1.2, ls="--" if ref else "-",
                color=colours[i], label=name + (" (reference)" if ref else ""),
            )  # fmt: skip
        ax.set_xticks(x, [str(b) for b in band_labels], rotation=45 if len(band_labels) > 6 else 0)
        ax.set_title(f"mean spectral profile {title}")
        ax.set_xlabel("band")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean value")
    if 0 < len(names) <= MAX_LEGEND:
        handles, texts = axes[1].get_legend_handles_labels()
        fig.legend(handles, texts, loc="outside lower center", ncols=_legend_columns(texts), fontsize="small")
    return fig


def _legend_columns(texts: Sequence[str], width_pt: float = 700.0) -> int:
    """Columns of a legend below a figure about ``width_pt`` wide: as many as the longest entry allows, up to 4."""
    longest = max((len(t) for t in texts), default=1)
    return max(1, min(4, len(texts), int(width_pt // (4.6 * longest + 40))))


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "turbo"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def node_positions(footprints: Sequence[F64 | None]) -> F64:
    """Graph node of every image: its footprint's centroid, spread on a circle where centroids coincide.

    A time series has every date on the same ground; its nodes are laid out around the common
    centre (in input order) so that each edge stays visible. Images without a footprint go
    on a row below the others.
    """
    centres = np.array([np.nan, np.nan]) * np.ones((len(footprints), 1))
    sizes = []
    for i, ring in enumerate(footprints):
        if ring is not None and len(ring):
            centres[i] = ring[:-1].mean(axis=0)
            sizes.append(float(np.ptp(ring, axis=0).max()))
    size = max(sizes, default=1.0)
    known = np.isfinite(centres[:, 0])
    rounded = [tuple(np.round(c / (0.01 * size))) if k else None for c, k in zip(centres, known, strict=True)]
    for key in {r for r in rounded if r is not None}:
        same = [i for i, r in enumerate(rounded) if r == key]
        if len(same) > 1:
            angles = 2 * np.pi * np.arange(len(same)) / len(same) + np.pi / 2
            centres[same] = centres[same].mean(axis=0) + 0.3 * size * np.column_stack([np.cos(angles), np.sin(angles)])
    missing = np.flatnonzero(~known)
    if missing.size:
        low = np.nanmin(centres[:, 1]) - size if known.any() else 0.0
        left = np.nanmin(centres[:, 0]) if known.any() else 0.0
        centres[missing] = np.column_stack([left + size * 0.5 * np.arange(missing.size), np.full(missing.size, low)])
    return centres


def overlap_graph(
    names: Sequence[str],
    footprints: Sequence[F64 | None],
    pairs: Sequence[tuple[int, int, float]],
    references: Sequence[int] = (),
    isolated: Sequence[int] = (),
) -> Figure:
    """The overlap graph over the image footprints.

    Parameters
    ----------
    names
        Image names.
    footprints
        Closed outline ``(points, 2)`` of each image in the model grid's CRS, or ``None``.
    pairs
        ``(i, j, used pixels)`` of every overlapping pair; one edge each, its width and colour
        by the pixels used (dashed grey when none was used).
    references
        Reference images (outlined and labelled in red).
    isolated
        Images that overlap no other (marked with a cross).

    Returns
    -------
    Figure
        One axes; one Line2D per pair, one Polygon patch per footprint.
    """
    fig = Figure(figsize=(9, 7.5), layout="constrained")
    ax = fig.subplots()
    nodes = node_positions(footprints)
    for i, ring in enumerate(footprints):
        if ring is not None:
            ref = i in references
            ax.add_patch(
                Polygon(ring, closed=True, fill=ref, alpha=0.25 if ref else 0.8, lw=2 if ref else 0.8,
                        ec=REFERENCE_COLOUR if ref else "0.4", fc=REFERENCE_COLOUR if ref else "none")
            )  # fmt: skip
    used = [w for _, _, w in pairs if w > 0]
    norm = Normalize(min(used, default=0.0), max(used, default=1.0) + (0 if len(set(used)) > 1 else 1))
    sm = ScalarMappable(norm, EDGE_CMAP)
    for i, j, w in pairs:
        segment = nodes[[i, j]]
        if w > 0:
            ax.plot(
                segment[:, 0], segment[:, 1], color=sm.to_rgba(np.array([w]))[0], lw=1 + 5 * float(norm(w)), zorder=3
            )
        else:
            ax.plot(segment[:, 0], segment[:, 1], color="0.6", lw=1, ls="--", zorder=3)
    _draw_nodes(ax, names, nodes, references, isolated)
    if used:
        fig.colorbar(sm, ax=ax, label="overlap pixels used", shrink=0.7)
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_title(f"overlap graph: {len(names)} images, {len(pairs)} overlapping pairs")
    ax.set_xlabel("x (model grid CRS)")
    ax.set_ylabel("y (model grid CRS)")
    return fig


def _draw_nodes(ax: Axes, names: Sequence[str], nodes: F64, references: Sequence[int], isolated: Sequence[int]) -> None:
    colours = [REFERENCE_COLOUR if i in references else "k" for i in range(len(names))]
    ax.scatter(nodes[:, 0], nodes[:, 1], s=30, c=colours, zorder=4)
    if isolated:
        iso = nodes[list(isolated)]
        ax.scatter(iso[:, 0], iso[:, 1], s=160, marker="x", c="tab:orange", zorder=5, label="isolated")
        ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize="small")
    if len(names) <= 60:
        for i, name in enumerate(names):
            ax.annotate(
                name, nodes[i], xytext=(4, 4), textcoords="offset points", fontsize=8, zorder=6,
                color=REFERENCE_COLOUR if i in references else "k",
            )  # fmt: skip


def _grid(fig: Figure, n: int, ncols: int) -> list[Axes]:
    rows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(rows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return list(axes[:n])


def departure(values: F64) -> float:
    """The largest ``|g - 1|`` of a gain field (0 when it has no finite value)."""
    finite = values[np.isfinite(values)]
    return float(np.abs(finite - 1).max()) if finite.size else 0.0


def gain_norm(spread: float) -> tuple[Normalize, float]:
    """The colour scale of gains, ``1 ± d`` with ``d = max(spread, GAIN_SCALE_FLOOR)``, and ``d``."""
    d = max(spread, GAIN_SCALE_FLOOR)
    return Normalize(1 - d, 1 + d), d


def block_maps(fields: Sequence[BlockMap], reference: BlockMap | None = None, band_label: str = "") -> Figure:
    """Each image's local gain field of one band on its own extent, and the reference block map.

    Every field shares one colour scale symmetric around 1 (:func:`gain_norm` of the largest
    departure from 1). Fields within :data:`NO_CORRECTION` of 1 everywhere are not drawn (the
    figure's title counts them); when no field departs, one panel says "no local correction" instead
    of a colour bar.

    Parameters
    ----------
    fields
        One gain field per image (a single band), placed by its extent.
    reference
        The reference block map of the same band, if known.
    band_label
        Which band is shown (for the titles).

    Returns
    -------
    Figure
        One AxesImage per drawn field (or the note's axes), plus one for the reference.
    """
    departures = [departure(f.values) for f in fields]
    drawn = [(f, d) for f, d in zip(fields, departures, strict=True) if d > NO_CORRECTION]
    n = max(len(drawn), 1) + (reference is not None)
    ncols = min(4, n)
    fig = Figure(figsize=(3.2 * ncols + 1.2, 3.0 * math.ceil(n / ncols) + 0.8), layout="constrained")
    axes = _grid(fig, n, ncols)
    norm, half = gain_norm(max(departures, default=0.0))
    for ax, (f, d) in zip(axes, drawn, strict=False):
        ax.imshow(f.values, extent=f.extent, cmap=GAIN_CMAP, norm=norm, interpolation="nearest")
        ax.set_aspect("equal")
        bare(ax, f"{f.name}: 1 ± {d:.2g}")
    if drawn:
        bar = fig.colorbar(ScalarMappable(norm, GAIN_CMAP), ax=axes[: len(drawn)], shrink=0.8,
                           label=f"local gain {band_label}".strip())  # fmt: skip
        bar.set_ticks([1 - half, 1.0, 1 + half], labels=[f"{v:.4g}" for v in (1 - half, 1.0, 1 + half)])
    else:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, f"no local correction\n(every field within ±{NO_CORRECTION:g} of 1)", ha="center",
                     va="center", transform=axes[0].transAxes, bbox={"fc": "white", "ec": "0.5"})  # fmt: skip
    if 0 < len(drawn) < len(fields):
        fig.suptitle(f"{len(fields) - len(drawn)} of {len(fields)} images without local correction "
                     f"(fields within ±{NO_CORRECTION:g} of 1): not drawn", fontsize=9)  # fmt: skip
    if reference is not None:
        ax = axes[-1]
        ref = ax.imshow(reference.values, extent=reference.extent, cmap="viridis", interpolation="nearest")
        ax.set_aspect("equal")
        bare(ax, f"reference block map {band_label}".strip())
        fig.colorbar(ref, ax=ax, label="block mean", shrink=0.8)
    return fig


def local_gain_maps(
    mosaic: GainMosaic,
    extent: Extent,
    band_labels: Sequence[str],
    outlines: Sequence[F64] = (),
    view: Extent | None = None,
) -> Figure:
    """Each band's local gain over the whole mosaic, one panel per band, on a scale symmetric around 1.

    A band's scale is ``1 - d`` to ``1 + d`` with ``d`` its spread (at least
    :data:`GAIN_SCALE_FLOOR`); a band without local correction gets a note, not a map.

    Parameters
    ----------
    mosaic
        Block mosaic of gains and spreads (:func:`~stacrrn.report.rasters.gain_mosaic`).
    extent
        ``(left, right, bottom, top)`` of the whole block grid.
    band_labels
        Label of each band (panel titles).
    outlines
        Closed outlines ``(points, 2)`` drawn thinly on every panel (e.g. the images' frames).
    view
        Limits of every panel (default ``extent``); grey where no image is.

    Returns
    -------
    Figure
        One axes per band, holding an AxesImage unless the band is uncorrected.
    """
    n = len(band_labels)
    ncols = min(4, max(n, 1))
    left, right, bottom, top = view or extent
    aspect = min(max((top - bottom) / (right - left), 0.3), 2.0) if right > left else 1.0
    fig = Figure(figsize=(3.3 * ncols + 0.4, (3.3 * aspect + 1.3) * math.ceil(n / ncols)), layout="constrained")
    for b, ax in enumerate(_grid(fig, n, ncols)):
        ax.set_facecolor(NO_IMAGE_COLOUR)
        for ring in outlines:
            ax.add_patch(Polygon(ring, closed=True, fill=False, lw=0.6, ec="0.15", alpha=0.7, zorder=3))
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_aspect("equal")
        _gain_panel(fig, ax, mosaic, b, extent, band_labels[b])
    return fig


def _gain_panel(fig: Figure, ax: Axes, mosaic: GainMosaic, band: int, extent: Extent, label: str) -> None:
    """Band ``band`` of the mosaic with its colour bar, or a note when the band is uncorrected."""
    flat = bool(mosaic.uncorrected[band])
    spread = float(mosaic.spread[band])
    norm, d = gain_norm(spread)
    if flat:
        ax.text(0.5, 0.5, f"no local correction\n(gains within ±{NO_CORRECTION:g} of 1)", ha="center", va="center",
                transform=ax.transAxes, bbox={"fc": "white", "ec": "0.5"}, zorder=4)  # fmt: skip
        ax.set_facecolor("white")  # unchanged everywhere, not "no image"
        shown: ScalarMappable = ScalarMappable(norm, GAIN_CMAP)
    else:
        shown = ax.imshow(mosaic.values[band], extent=extent, cmap=GAIN_CMAP, norm=norm, interpolation="nearest")
    bare(ax, label if flat else f"{label}: gains within 1 ± {spread:.2g}")
    bar = fig.colorbar(shown, ax=ax, orientation="horizontal", shrink=0.9, label="local gain")
    bar.set_ticks([1 - d, 1.0, 1 + d], labels=[f"{v:.4g}" for v in (1 - d, 1.0, 1 + d)])
    bar.ax.set_visible(not flat)  # hidden, but keeping the panels the same size
