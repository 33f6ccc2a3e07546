"""Reports of a run: a self-contained HTML page and PNG figures from the outputs of match or run.

Typical notebook use::

    from stacrrn.report import load_run, mosaic_figure, profile_figure, overlap_figure, quicklook_figure
    outputs = load_run("out/")          # a match folder, a run prefix, collection.json or model JSON
    mosaic_figure(outputs)              # the whole mosaic before and after; displays inline
    profile_figure(outputs)
    build_report("out/")                # out/report/report.html and out/report/*.png
"""

from __future__ import annotations

from stacrrn.report.build import ReportResult, build_report, default_out_dir
from stacrrn.report.figures import (
    BeforeAfter,
    block_maps,
    figure_png,
    local_gain_maps,
    mosaic_pair,
    overlap_graph,
    quicklooks,
    spectral_profiles,
)
from stacrrn.report.mosaic import canvas_of, read_mosaic
from stacrrn.report.rasters import (
    BlockMap,
    GainMosaic,
    band_means,
    field_maps,
    footprint,
    gain_mosaic,
    read_block_map,
    read_preview,
)
from stacrrn.report.run_figures import (
    block_map_figure,
    footprints,
    local_gain_figure,
    mosaic_figure,
    overlap_figure,
    overlap_pairs,
    profile_figure,
    profile_means,
    quicklook_figure,
    read_previews,
    rgb_bands,
    rgb_caption,
)
from stacrrn.report.run_outputs import BandSource, ImageOutputs, RunOutputs, load_run

__all__ = [
    "BandSource",
    "BeforeAfter",
    "BlockMap",
    "GainMosaic",
    "ImageOutputs",
    "ReportResult",
    "RunOutputs",
    "band_means",
    "block_map_figure",
    "block_maps",
    "build_report",
    "canvas_of",
    "default_out_dir",
    "field_maps",
    "figure_png",
    "footprint",
    "footprints",
    "gain_mosaic",
    "load_run",
    "local_gain_figure",
    "local_gain_maps",
    "mosaic_figure",
    "mosaic_pair",
    "overlap_figure",
    "overlap_graph",
    "overlap_pairs",
    "profile_figure",
    "profile_means",
    "quicklook_figure",
    "quicklooks",
    "read_block_map",
    "read_mosaic",
    "read_preview",
    "read_previews",
    "rgb_bands",
    "rgb_caption",
    "spectral_profiles",
]
