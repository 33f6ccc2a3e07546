"""``build_report``: one self-contained HTML page, plus its figures as PNG files, from a run."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from stacrrn.errors import OutputError
from stacrrn.io.files import atomic_write_bytes, atomic_write_text, remove_temporary_folder
from stacrrn.report.figures import GAIN_SCALE_FLOOR, figure_png
from stacrrn.report.html import Section, caption, image, page, paragraph
from stacrrn.report.mosaic import canvas_of
from stacrrn.report.rasters import NO_CORRECTION, gain_mosaic, gain_spread
from stacrrn.report.run_figures import (
    block_map_band,
    block_map_figure,
    display_labels,
    local_gain_figure,
    mosaic_figure,
    overlap_figure,
    profile_figure,
    quicklook_figure,
    read_previews,
    rgb_caption,
)
from stacrrn.report.run_outputs import RunOutputs, is_url, load_run, parent
from stacrrn.report.tables import metrics_html, parameters_table, summary_table

REPORT_FILE = "report.html"
MAX_QUICKLOOKS = 16
"""Quick-looks drawn by default (the first images in model order; the report says how many)."""
LOCAL_CAPTION = (
    "local gain of every band over the whole mosaic, one value per block (each image's field nodes placed on "
    "the model's block grid); red: brightened, blue: darkened, white: unchanged, grey: no image. Each band has "
    f"its own scale, symmetric around 1: 1 ± the band's largest departure from 1 (at least ± {GAIN_SCALE_FLOOR:g}). "
    "Where several images cover a block, the gain departing most from 1 there is shown (largest |log gain|, sign "
    "kept). Thin outlines: each image's frame of blocks, where its local field acts."
)
BLOCK_CAPTION = (
    "band {band} (the band whose fields depart most from 1): each image's local gain field on its own extent, one "
    "pixel per block, on one colour scale symmetric around 1 (1 ± the largest departure, at least "
    f"± {GAIN_SCALE_FLOOR:g}): red brightens, blue darkens, white leaves unchanged. Images whose field stays "
    f"within ±{NO_CORRECTION:g} of 1 are not drawn. Last panel: the reference block map (count-weighted mean of the "
    "images' corrected block means)."
)
NO_LOCAL = f"no local correction: every local gain field is within ±{NO_CORRECTION:g} of 1 in every band"


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote."""

    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def pngs(self) -> list[Path]:
        """The figure files, in report order."""
        return list(self.figures.values())


def default_out_dir(run: str | os.PathLike[str]) -> Path:
    """``<RUN>/report`` for a run on the local file system, ``./stacrrn-report`` for a remote one."""
    href = os.fspath(run).removeprefix("file://")
    if is_url(href):
        return Path("stacrrn-report")
    folder = parent(href) if href.endswith(".json") else href
    return Path(folder) / "report"


@dataclass
class _Figures:
    """Renders figures to PNG bytes, keyed by section id, noting any that fail."""

    dpi: int
    pngs: dict[str, bytes] = field(default_factory=dict)

    def add(self, key: str, make: Callable[[], Figure | None], alt: str) -> str:
        fig = make()
        if fig is None:
            return ""
        self.pngs[key] = figure_png(fig, self.dpi)
        return image(self.pngs[key], alt)


def _local_correction(outputs: RunOutputs, figures: _Figures) -> str:
    """Body of the "Local correction" section: the per-band mosaic of local gains, or why there is none."""
    model = outputs.model
    if model.local_fit is None:
        return paragraph(f"method {model.method}: there is no local step, hence no local correction")
    labels = display_labels(outputs)
    flat = [labels[b] for b in np.flatnonzero(gain_mosaic(model.local_fit).uncorrected)]
    if len(flat) == len(labels):
        return paragraph(NO_LOCAL, "note")
    body = caption(LOCAL_CAPTION)
    if flat:
        body += paragraph(f"no local correction in band {', '.join(flat)} (gains within ±{NO_CORRECTION:g} of 1)")
    return body + figures.add(
        "local-correction", lambda: local_gain_figure(outputs), "local gain of every band over the mosaic"
    )


def _block_maps(outputs: RunOutputs, figures: _Figures, notes: list[str]) -> str:
    """Body of the "Block maps" section: one band's fields on their own extents, or why there are none."""
    model = outputs.model
    if model.local_fit is None:
        return paragraph(f"method {model.method}: there is no local step, hence no block maps")
    k = block_map_band(outputs)
    if float(gain_spread(model.local_fit).max(initial=0.0)) <= NO_CORRECTION:
        text = paragraph(NO_LOCAL + ": no field is drawn, only the reference block map", "note")
    else:
        text = caption(BLOCK_CAPTION.format(band=display_labels(outputs)[k]))
    figure = figures.add("block-maps", lambda: block_map_figure(outputs, k, notes), "local gain fields and reference")
    return text + figure


def _mosaic(outputs: RunOutputs, figures: _Figures, rgb: Sequence[str] | None, notes: list[str]) -> str:
    """Body of the "Mosaic" section: the whole mosaic before and after, side by side."""
    canvas = canvas_of(outputs.model.grid)
    text = caption(
        f"all images at low resolution ({canvas.width} x {canvas.height} px on the model grid, from decimated "
        f"reads of the inputs and outputs), {rgb_caption(outputs, rgb)}; where images overlap, the first in model "
        "order is on top; one 2-98 % stretch of the mosaic after, applied to both"
    )
    return text + figures.add("mosaic", lambda: mosaic_figure(outputs, rgb, notes), "mosaic before and after")


def _sections(outputs: RunOutputs, figures: _Figures, rgb: Sequence[str] | None, max_quicklooks: int,
              notes: list[str]) -> list[Section]:  # fmt: skip
    model = outputs.model
    labels = list(outputs.band_labels)
    shown = list(range(min(len(outputs.images), max_quicklooks)))
    bands_text = rgb_caption(outputs, rgb)  # checks rgb before any pixel is read
    mosaic = _mosaic(outputs, figures, rgb, notes)
    previews = read_previews(outputs, shown, notes=notes)
    rest = f" (the first {len(shown)} of {len(outputs.images)} images)" if len(shown) < len(outputs.images) else ""
    every = previews if len(shown) == len(outputs.images) else None  # else read for the profiles if needed
    profiles = figures.add(
        "profiles", lambda: profile_figure(outputs, every), "mean spectral profiles before and after"
    )
    graph = figures.add("overlap-graph", lambda: overlap_figure(outputs, notes), "overlap graph over the footprints")
    looks = caption(
        f"decimated previews, {bands_text}; one 2-98 % stretch of all corrected images, applied to every image "
        f"before and after{rest}"
    ) + figures.add("quicklooks", lambda: quicklook_figure(outputs, rgb, previews, shown), "before/after quick-looks")
    return [
        Section("summary", "Summary", summary_table(model, labels, outputs.kind, outputs.model_href)),
        Section("mosaic", "Mosaic before/after", mosaic),
        Section("profiles", "Spectral profiles", profiles),
        Section("parameters", "Parameters", parameters_table(model, labels)),
        Section("overlap-graph", "Overlap graph", graph),
        Section("local-correction", "Local correction", _local_correction(outputs, figures)),
        Section("block-maps", "Block maps", _block_maps(outputs, figures, notes)),
        Section("quicklooks", "Quick-looks", looks),
        Section("metrics", "Metrics", metrics_html(model.quality, labels, model.local_fit is not None)),
    ]


def build_report(
    run: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    rgb: Sequence[str] | None = None,
    max_quicklooks: int = MAX_QUICKLOOKS,
    dpi: int = 90,
) -> ReportResult:
    """Write ``report.html`` (self-contained) and its figures as PNG files for a run.

    Parameters
    ----------
    run
        Output folder or prefix of ``stacrrn match`` or ``stacrrn run`` (local, ``s3://``,
        ``http(s)://``), or its ``collection.json`` or model JSON.
    out_dir
        Folder receiving ``report.html`` and ``<section>.png``; default :func:`default_out_dir`.
    rgb
        Bands of the mosaic and the quick-looks on R, G, B (or one, grey): labels, common
        names or 1-based positions, e.g. ``("B04", "B03", "B02")`` or ``("red", "green", "blue")``;
        default the bands whose common names are red, green and blue, else the first three
        (see :func:`~stacrrn.report.run_figures.rgb_bands`).
    max_quicklooks
        At most this many images get quick-looks.
    dpi
        Resolution of the figures.

    Returns
    -------
    ReportResult
        The HTML path, the PNG paths by section id, and notes on what was missing.

    Raises
    ------
    InputError
        If the run holds no readable model, ``rgb`` names unknown bands, or ``out_dir``
        cannot be written.
    """
    outputs = load_run(run)
    notes = list(outputs.notes)
    figures = _Figures(dpi)
    sections = _sections(outputs, figures, rgb, max_quicklooks, notes)
    if notes:
        sections[0] = Section(
            "summary", "Summary", sections[0].body + "".join(paragraph(n, "note") for n in dict.fromkeys(notes))
        )
    out = Path(out_dir) if out_dir is not None else default_out_dir(run)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    written = {}
    for key, png in figures.pngs.items():
        written[key] = out / f"{key}.png"
        atomic_write_bytes(written[key], png)
    title = f"stacrrn report: {outputs.model.method}, {len(outputs.images)} images"
    html_path = out / REPORT_FILE
    atomic_write_text(html_path, page(title, sections, f"run {outputs.root}"))
    remove_temporary_folder(out)
    return ReportResult(html_path, written, tuple(dict.fromkeys(notes)))
