"""``stacrrn seamlines`` and ``stacrrn mosaic``: seamlines and seamless mosaics, local or from STAC."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from stacrrn.cli.common import app, choices, console, handle_errors, parse_named, table_console, with_progress
from stacrrn.cli.masking import Inputs, source_of, split
from stacrrn.cli.search_options import AllowLocalHrefs, Bbox, Collections, Datetime, StacUrl
from stacrrn.errors import ParameterError
from stacrrn.options import PRIORITY_BY, SEAM_MODES, ExecutionOptions

if TYPE_CHECKING:
    from stacrrn.pipeline.mosaic.mosaic import MosaicResult

PANEL = "Mosaic"

Feather = Annotated[
    float,
    typer.Option(
        metavar="PIXELS", help="Blend width across seams, in mosaic pixels (0: hard cut).", rich_help_panel=PANEL
    ),
]
Priority = Annotated[
    list[str] | None,
    typer.Option(
        "--priority",
        metavar="NAME=WEIGHT",
        help="NAME=WEIGHT: larger wins more area (default 1); repeatable.",
        rich_help_panel=PANEL,
    ),
]
PriorityBy = Annotated[
    str | None,
    typer.Option(
        metavar=choices(PRIORITY_BY),
        help=f"STAC: priorities from {' | '.join(PRIORITY_BY)} (clearer / more recent wins).",
        rich_help_panel=PANEL,
    ),
]
SeamMode = Annotated[
    str,
    typer.Option(
        "--seams",
        metavar=choices(SEAM_MODES),
        help=f"{' | '.join(SEAM_MODES)}: centre lines, or moved onto the cheapest cut through the images' "
        "differences (avoids buildings, roads, clouds).",
        rich_help_panel=PANEL,
    ),
]
SeamCorridor = Annotated[
    int,
    typer.Option(
        metavar="PIXELS", help="Least-cost seams: how far (seam-grid pixels) a seam may move.", rich_help_panel=PANEL
    ),
]
SeamResolution = Annotated[
    float | None,
    typer.Option(
        metavar="SIZE",
        help="Pixel size of the seam grid (default: coarse enough for 2048 pixels).",
        rich_help_panel=PANEL,
    ),
]


def parse_priority(values: list[str] | None) -> dict[str, float]:
    """``NAME=WEIGHT`` values -> ``{name: weight}``.

    Raises
    ------
    ParameterError
        For a malformed value.
    """
    out = {}
    for name, weight in parse_named(values, "--priority", "NAME=WEIGHT", "scene1=2").items():
        try:
            out[name] = float(weight)
        except ValueError:
            raise ParameterError(f"--priority {name}={weight!r}: the weight must be a number, e.g. {name}=2") from None
    return out


def merged_priority(source: Any, values: list[str] | None, by: str | None) -> dict[str, float]:
    """Priorities from ``--priority-by`` (STAC items), overridden by explicit ``--priority`` values."""
    from stacrrn.io.stac import Search, search_items
    from stacrrn.pipeline.mosaic.mosaic import item_priorities

    base = {}
    if by:
        if not isinstance(source, Search):
            raise ParameterError("--priority-by needs STAC items (a --stac search or item files)")
        base = item_priorities(search_items(source), by)
    return base | parse_priority(values)


def print_mosaic(result: MosaicResult) -> None:
    """Seam metrics per band and where the outputs are."""
    table = Table(title=f"mosaic of {len(result.seams.names)} images: {result.hrefs['mosaic']}")
    for col in ("band", "seam jump", "seam / nearby gradient"):
        table.add_column(col, justify="right")
    m = result.metrics.to_dict()
    for k, (jump, ratio) in enumerate(zip(m["jump"], m["gradient_ratio"], strict=True)):
        table.add_row(str(k + 1), "-" if jump is None else f"{jump:.3g}", "-" if ratio is None else f"{ratio:.3f}")
    table_console().print(table)
    console.print(f"seamlines {result.hrefs['seamlines']}; item {result.item_href}", highlight=False)


@app.command("seamlines")
@handle_errors
def seamlines_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    inputs: Inputs = None,
    stac: StacUrl = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    allow_local_hrefs: AllowLocalHrefs = False,
    bands: Annotated[str | None, typer.Option(help="Bands (local: numbers; STAC: assets/common names).")] = None,
    priority: Priority = None,
    priority_by: PriorityBy = None,
    seams_mode: SeamMode = "center",
    seam_corridor: SeamCorridor = 16,
    seam_resolution: SeamResolution = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table.")] = False,
) -> None:
    """Write the seamlines (GeoJSON, GeoParquet) and valid-data footprints of the inputs."""
    from stacrrn.pipeline.mosaic.mosaic import mosaic_sources, write_seamlines

    source = source_of(inputs, stac, collection, bbox, datetime, allow_local_hrefs)
    weights = merged_priority(source, priority, priority_by)
    sources = mosaic_sources(source, bands=split(bands), seam_resolution=seam_resolution)
    seams, _ = write_seamlines(sources, out, priority=weights, seams=seams_mode, corridor=seam_corridor)
    if not quiet:
        table = Table(title=f"seamlines of {len(seams.names)} images in {out}")
        for col in ("image", "priority", "seam area %"):
            table.add_column(col, justify="right")
        total = sum(r.area for r in seams.regions if r is not None) or 1.0
        for name, region, p in zip(seams.names, seams.regions, seams.priority, strict=True):
            table.add_row(name, f"{p:g}", f"{100 * (region.area if region is not None else 0) / total:.1f}")
        table_console().print(table)


@app.command("mosaic")
@handle_errors
def mosaic_command(
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder or s3://bucket/prefix.")],
    inputs: Inputs = None,
    stac: StacUrl = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    allow_local_hrefs: AllowLocalHrefs = False,
    bands: Annotated[str | None, typer.Option(help="Bands (local: numbers; STAC: assets/common names).")] = None,
    feather: Feather = 32.0,
    priority: Priority = None,
    priority_by: PriorityBy = None,
    seams_mode: SeamMode = "center",
    seam_corridor: SeamCorridor = 16,
    seam_resolution: SeamResolution = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the mosaic (default: first input's).")] = None,
    resolution: Annotated[float | None, typer.Option(help="Pixel size of the mosaic.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="A model of these images (stacrrn-model*.json of match or run; path or URL): normalize them "
            "while blending, without corrected copies.",
            rich_help_panel=PANEL,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Concurrent chunks.")] = ExecutionOptions.workers,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or table.")] = False,
) -> None:
    """Blend the inputs across seamlines into a mosaic COG, with seamlines, footprints and a STAC item."""
    from stacrrn.pipeline.mosaic.mosaic import mosaic, mosaic_sources
    from stacrrn.pipeline.passes.apply import read_model

    source = source_of(inputs, stac, collection, bbox, datetime, allow_local_hrefs)
    weights = merged_priority(source, priority, priority_by)
    fitted = read_model(model) if model else None
    sources = mosaic_sources(
        source,
        bands=split(bands),
        crs=crs,
        resolution=resolution,
        seam_resolution=seam_resolution,
        model=fitted,
        workers=workers,
    )
    result = with_progress(
        quiet,
        lambda progress: mosaic(
            sources,
            out,
            feather=feather,
            priority=weights,
            seams=seams_mode,
            corridor=seam_corridor,
            workers=workers,
            progress=progress,
        ),
    )
    if not quiet:
        print_mosaic(result)
