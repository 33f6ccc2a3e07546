"""Masks and PIFs on the command line: shared options, the quality table, ``clouds`` and ``pif``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from stacrrn.cli.common import (
    app,
    choices,
    console,
    handle_errors,
    parse_named,
    print_warnings,
    table_console,
    with_progress,
)
from stacrrn.cli.search_options import AllowLocalHrefs, Bbox, Collections, Datetime, StacUrl, make_search
from stacrrn.core.settings import ESTIMATORS, QA_KINDS
from stacrrn.errors import ParameterError
from stacrrn.options import (
    CLOUD_MASKS,
    MODES,
    PIF_KINDS,
    SENSOR_REFLECTANCE,
    SENSORS,
    ExecutionOptions,
    InputOptions,
    MaskOptions,
    PifOptions,
)

if TYPE_CHECKING:
    from stacrrn.core.model import RRNModel
    from stacrrn.pipeline.mask_products import MaskProduct

PANEL = "Masks and PIFs"

Pif = Annotated[
    list[str] | None,
    typer.Option(
        "--pif",
        metavar=f"{'|'.join(PIF_KINDS)}|VECTOR|none",
        help=f"{'|'.join(PIF_KINDS)}|VECTOR|none: pseudo-invariant pixels for the statistics; repeatable, combined "
        "(VECTOR: GeoJSON/GeoPackage/GeoParquet of include polygons).",
        rich_help_panel=PANEL,
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        metavar="VECTOR",
        help="Vector file of polygons never used by the statistics; repeatable.",
        rich_help_panel=PANEL,
    ),
]
PifThreshold = Annotated[
    float,
    typer.Option(metavar="PROBABILITY", help="IR-MAD: minimum no-change probability of a PIF.", rich_help_panel=PANEL),
]
PifMinShare = Annotated[
    float,
    typer.Option(
        metavar="SHARE", help="IR-MAD: keep at least this share of each overlap as PIFs.", rich_help_panel=PANEL
    ),
]
Holdout = Annotated[
    float | None,
    typer.Option(
        metavar="SHARE",
        help="Share of pixels held out to validate the model (default 0.2 with PIFs).",
        rich_help_panel=PANEL,
    ),
]
Estimator = Annotated[
    str,
    typer.Option(
        metavar=choices(ESTIMATORS),
        help=f"Relative gain of a pair: {' | '.join(ESTIMATORS)} regression.",
        rich_help_panel=PANEL,
    ),
]
BandNames = Annotated[
    str | None,
    typer.Option(
        metavar="NAME,NAME,...",
        help="Local rasters: eo:common_name of each band used, comma-separated (e.g. blue,green,red,nir).",
        rich_help_panel=PANEL,
    ),
]
Masks = Annotated[
    list[str] | None,
    typer.Option(
        "--mask",
        metavar="NAME=PATH[:KIND]",
        help=f"NAME=PATH[:KIND] mask raster of input NAME, any grid/CRS; KIND {'|'.join(QA_KINDS)} "
        "(clear: non-zero = usable); repeatable.",
        rich_help_panel=PANEL,
    ),
]
ReflectanceScale = Annotated[
    float | None,
    typer.Option(
        metavar="SCALE",
        help="Reflectance = value * scale + offset, for the spectral cloud test and NDVI PIFs "
        "(STAC default: raster:bands).",
        rich_help_panel=PANEL,
    ),
]
ReflectanceOffset = Annotated[
    float, typer.Option(metavar="OFFSET", help="See --reflectance-scale.", rich_help_panel=PANEL)
]
SensorPreset = Annotated[
    str | None,
    typer.Option(
        "--sensor",
        metavar=choices(SENSORS),
        help="The product's published reflectance scale and offset, instead of --reflectance-scale and "
        "--reflectance-offset (Sentinel-2: processing baseline 04.00 and later).",
        rich_help_panel=PANEL,
    ),
]


CloudMaskOption = Annotated[
    str,
    typer.Option(
        metavar=choices(CLOUD_MASKS),
        help="Clear-sky masks: quality assets (auto, qa), a spectral test, s2cloudless, or none.",
        rich_help_panel=PANEL,
    ),
]


def pif_options(
    pif: list[str] | None, exclude: list[str] | None, threshold: float, holdout: float | None, min_share: float
) -> PifOptions | None:
    """:class:`PifOptions` from the command-line values (``None`` when nothing is asked)."""
    return PifOptions.parse(pif or [], exclude or [], threshold, holdout, min_share)


def reflectance(scale: float | None, offset: float, sensor: str | None = None) -> tuple[float, float] | None:
    """``(scale, offset)`` from ``--reflectance-scale/--reflectance-offset`` or a ``--sensor`` preset, or ``None``.

    Raises
    ------
    ParameterError
        For an unknown sensor, or a sensor together with an explicit scale.
    """
    if sensor is None:
        return None if scale is None else (scale, offset)
    if scale is not None:
        raise ParameterError("--sensor sets the reflectance scale and offset: drop --reflectance-scale, or --sensor")
    if sensor not in SENSOR_REFLECTANCE:
        raise ParameterError(f"unknown --sensor {sensor!r}; choose one of {', '.join(SENSORS)}")
    return SENSOR_REFLECTANCE[sensor]


def split(values: str | None) -> list[str] | None:
    """Comma-separated values, or ``None``."""
    return [v.strip() for v in values.split(",") if v.strip()] if values else None


def parse_masks(values: list[str] | None) -> dict[str, str]:
    """``NAME=PATH[:KIND]`` values -> ``{name: "path[:kind]"}`` (one-line error when malformed)."""
    return parse_named(values, "--mask", "NAME=PATH[:KIND]", "scene1=scene1_qa.tif:qa_pixel")


def _cell(agreement: dict[str, Any]) -> str:
    rmse = agreement.get("rmse")
    return "-" if rmse is None else f"{rmse:.3g}"


def print_quality_table(model: RRNModel, labels: list[str]) -> None:
    """Per-image (per-date) table: valid share, pixels used, held-out RMSE before -> after per band."""
    q = model.quality
    if "images" not in q:
        return
    holdout = {row["image"]: row for row in q.get("holdout", [])}
    used: dict[str, int] = {}
    for pair in q.get("pairs", []):
        for name in pair["images"]:
            used[name] = used.get(name, 0) + pair["used_pixels"]
    table = Table(title="per image: valid pixels, pixels used by its pairs, held-out RMSE before -> after")
    for col in ("image", "valid %", "used px", "held out vs", *labels):
        table.add_column(col, justify="right")
    for row in q["images"]:
        h = holdout.get(row["name"])
        cells = [f"{_cell(b['before'])} -> {_cell(b['after'])}" for b in h["bands"]] if h else ["-"] * len(labels)
        against = ", ".join(h["against"]) if h else "-"
        table.add_row(row["name"], f"{100 * row['valid_share']:.1f}", str(used.get(row["name"], 0)), against, *cells)
    table_console().print(table)


def print_products(products: list[MaskProduct], what: str) -> None:
    """Table of written masks and their usable share."""
    table = Table(title=what)
    for col in ("mask", "valid px", "usable %", "file"):
        table.add_column(col, justify="right")
    for p in products:
        table.add_row(p.name, str(p.valid_pixels), f"{p.usable_percent:.1f}", str(p.path))
    table_console().print(table)


Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Local rasters, or STAC item/ItemCollection JSON files.", show_default=False),
]
Bands = Annotated[
    str | None,
    typer.Option(
        metavar="BAND,BAND,...", help="Local: 1-based band numbers; STAC: asset keys/common names; comma-separated."
    ),
]


def source_of(
    inputs: list[str] | None,
    stac: str | None,
    collection: list[str] | None,
    bbox: str | None,
    datetime: str | None,
    allow_local_hrefs: bool = False,
) -> Any:
    """Local rasters (a list of paths) or a :class:`~stacrrn.io.stac.Search` (item files or ``--stac``)."""
    files = inputs or []
    if stac or any(f.endswith(".json") for f in files):
        return make_search(
            stac,
            None,
            files or None,
            collection,
            bbox,
            datetime,
            None,
            None,
            None,
            None,
            allow_local_hrefs=allow_local_hrefs,
        )
    if len(files) < 1:
        raise ParameterError("give input rasters, STAC item files, or --stac URL with --collection/--bbox")
    return files


@app.command("clouds")
@handle_errors
def clouds_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for <name>-clear.tif masks.")],
    inputs: Inputs = None,
    stac: StacUrl = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    allow_local_hrefs: AllowLocalHrefs = False,
    bands: Bands = None,
    cloud_mask: CloudMaskOption = MaskOptions.cloud_mask,
    mask: Masks = None,
    band_names: BandNames = None,
    reflectance_scale: ReflectanceScale = None,
    reflectance_offset: ReflectanceOffset = 0.0,
    sensor: SensorPreset = None,
    workers: Annotated[int, typer.Option(help="Concurrent images.")] = ExecutionOptions.workers,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or table.")] = False,
) -> None:
    """Write each input's clear-sky mask (1 clear, 0 cloud/shadow/snow..., 255 no data) as a COG."""
    from stacrrn.pipeline.mask_products import local_cloud_mask, mask_plans, write_cloud_masks

    scaling = reflectance(reflectance_scale, reflectance_offset, sensor)
    source = source_of(inputs, stac, collection, bbox, datetime, allow_local_hrefs)
    masks = parse_masks(mask)
    if isinstance(source, list):
        cloud_mask = local_cloud_mask(cloud_mask, split(band_names), masks)
    plain, masked = mask_plans(
        source,
        bands=split(bands),
        cloud_mask=cloud_mask,
        masks=masks,
        band_names=split(band_names),
        reflectance=scaling,
        workers=workers,
    )
    products = with_progress(quiet, lambda progress: write_cloud_masks(plain, masked, out, workers, progress))
    if not quiet:
        print_products(products, f"clear-sky masks in {out}")


@app.command("pif")
@handle_errors
def pif_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for pif-<a>__<b>.tif masks.")],
    inputs: Inputs = None,
    stac: StacUrl = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    allow_local_hrefs: AllowLocalHrefs = False,
    bands: Bands = None,
    pif: Pif = None,
    exclude: Exclude = None,
    pif_threshold: PifThreshold = PifOptions.threshold,
    pif_min_share: PifMinShare = PifOptions.min_share,
    mode: Annotated[str, typer.Option(metavar=choices(MODES), help="Pairs of a mosaic or a time series (STAC).")] = (
        InputOptions.mode
    ),
    neighbours: Annotated[int | None, typer.Option(metavar="N", help="Time series: nearest dates paired.")] = None,
    cloud_mask: CloudMaskOption = MaskOptions.cloud_mask,
    mask: Masks = None,
    band_names: BandNames = None,
    reflectance_scale: ReflectanceScale = None,
    reflectance_offset: ReflectanceOffset = 0.0,
    sensor: SensorPreset = None,
    workers: Annotated[int, typer.Option(help="Concurrent pairs.")] = ExecutionOptions.workers,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or table.")] = False,
) -> None:
    """Write each overlapping pair's pseudo-invariant pixels (1 PIF, 0 not, 255 outside the overlap)."""
    from stacrrn.pipeline.mask_products import mask_plans, write_pif_masks

    scaling = reflectance(reflectance_scale, reflectance_offset, sensor)
    options = PifOptions.parse(pif or ["imad"], exclude or [], pif_threshold, 0.0, pif_min_share)
    if options is None:
        raise ParameterError("stacrrn pif needs a criterion: --pif imad, ndvi or a vector file")
    source = source_of(inputs, stac, collection, bbox, datetime, allow_local_hrefs)
    _, plan = mask_plans(
        source,
        bands=split(bands),
        cloud_mask=cloud_mask,
        masks=parse_masks(mask),
        band_names=split(band_names),
        reflectance=scaling,
        pif=options,
        mode=mode,
        neighbours=neighbours,
        workers=workers,
    )
    products, warnings = with_progress(quiet, lambda progress: write_pif_masks(plan, out, workers, progress))
    if not quiet:
        print_products(products, f"pseudo-invariant pixels per pair in {out}")
        print_warnings(warnings)
    elif warnings:
        console.print(f"{len(warnings)} warning(s)")
