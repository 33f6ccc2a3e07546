"""``stacrrn search``, ``stacrrn run`` and ``stacrrn catalog``: the STAC-native commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stacrrn.cli.common import (
    Blocks,
    BlockSize,
    ChunkSize,
    Crs,
    FidelityEvery,
    LocalDecayOption,
    LocalExtentOption,
    MethodOption,
    MinOverlap,
    ModeOption,
    Neighbours,
    OverlapPixels,
    Resolution,
    Resume,
    Scheduler,
    Star,
    WorkersOption,
    app,
    choices,
    console,
    handle_errors,
    local_params,
    print_fidelity_table,
    print_model_table,
    print_warnings,
    table_console,
    with_progress,
)
from stacrrn.cli.masking import (
    CloudMaskOption,
    Estimator,
    Exclude,
    Holdout,
    Pif,
    PifMinShare,
    PifThreshold,
    ReflectanceOffset,
    ReflectanceScale,
    SensorPreset,
    pif_options,
    print_quality_table,
    reflectance,
)
from stacrrn.cli.mosaic import Feather, Priority, SeamMode, parse_priority, print_mosaic
from stacrrn.cli.search_options import (
    AllowLocalHrefs,
    Bbox,
    Catalog,
    Collections,
    Datetime,
    Filter,
    Ids,
    ItemFiles,
    MaxItems,
    Query,
    StacUrl,
    Timeout,
    make_search,
)
from stacrrn.core.settings import LocalParams
from stacrrn.errors import ParameterError
from stacrrn.io.retry import NETWORK_TIMEOUT
from stacrrn.options import (
    ON_ERROR,
    OUTPUT_FORMATS,
    ExecutionOptions,
    InputOptions,
    MaskOptions,
    ModelOptions,
    OutputOptions,
    PifOptions,
    RunOptions,
)


def _overlap_share(items: list[Any]) -> list[float]:
    """Share of each item's footprint covered by the other items' footprints (0..1)."""
    from shapely.geometry import shape
    from shapely.ops import unary_union

    shapes = [shape(it.geometry) if it.geometry else None for it in items]
    out = []
    for k, s in enumerate(shapes):
        others = [o for j, o in enumerate(shapes) if j != k and o is not None]
        if s is None or s.area == 0 or not others:
            out.append(0.0)
            continue
        out.append(float(s.intersection(unary_union(others)).area / s.area))
    return out


@app.command("search")
@handle_errors
def search_command(
    item_files: ItemFiles = None,
    stac: StacUrl = None,
    catalog: Catalog = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    query: Query = None,
    filter_: Filter = None,
    ids: Ids = None,
    max_items: MaxItems = None,
    timeout: Timeout = NETWORK_TIMEOUT,
    allow_local_hrefs: AllowLocalHrefs = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as an ItemCollection.")] = False,
) -> None:
    """Preview what a search selects: items, dates, cloud cover, assets and footprint overlap."""
    search = make_search(
        stac,
        catalog,
        item_files,
        collection,
        bbox,
        datetime,
        query,
        filter_,
        ids,
        max_items,
        timeout,
        allow_local_hrefs=allow_local_hrefs,
    )
    from stacrrn.io.stac import search_items

    items = search_items(search)
    if as_json:
        fc = {"type": "FeatureCollection", "features": [it.to_dict(transform_hrefs=False) for it in items]}
        typer.echo(json.dumps(fc))
        return
    table = Table(title=f"{len(items)} item(s) from {search.describe()}")
    for col in ("id", "collection", "datetime", "cloud cover %", "normalized assets", "footprint overlap %"):
        table.add_column(col, justify="right" if "%" in col else "left")
    from stacrrn.io.band_choice import choose_assets

    for it, share in zip(items, _overlap_share(items), strict=True):
        cloud = it.properties.get("eo:cloud_cover")
        table.add_row(
            it.id,
            it.collection_id or "",
            it.datetime.isoformat() if it.datetime else "",
            "" if cloud is None else f"{cloud:.1f}",
            ",".join(c.key for c in choose_assets(it) if c.normalized),
            f"{100 * share:.0f}",
        )
    console = table_console()
    console.print(table)
    assets = Table(title=f"Assets of {items[0].id}: normalized by default, or why not (--assets overrides)")
    for col in ("asset", "normalized", "why"):
        assets.add_column(col)
    for choice in choose_assets(items[0]):
        assets.add_row(choice.key, "yes" if choice.normalized else "no", choice.reason)
    console.print(assets)


def _split(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


@app.command("run")
@handle_errors
def run_command(
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder or s3://bucket/prefix.")],
    item_files: ItemFiles = None,
    stac: StacUrl = None,
    catalog: Catalog = None,
    collection: Collections = None,
    bbox: Bbox = None,
    datetime: Datetime = None,
    query: Query = None,
    filter_: Filter = None,
    ids: Ids = None,
    max_items: MaxItems = None,
    timeout: Timeout = NETWORK_TIMEOUT,
    allow_local_hrefs: AllowLocalHrefs = False,
    assets: Annotated[
        str | None,
        typer.Option(
            metavar="ASSET,ASSET,...",
            help="Bands: asset keys, asset.N, band names or common names, comma-separated "
            "(default: the spectral reflectance assets).",
        ),
    ] = None,
    mode: ModeOption = InputOptions.mode,
    neighbours: Neighbours = InputOptions.neighbours,
    star: Star = InputOptions.star,
    reference: Annotated[
        list[str] | None, typer.Option("--reference", "-r", metavar="ID", help="Reference item id; repeatable.")
    ] = None,
    method: MethodOption = ModelOptions.method,
    block_size: BlockSize = None,
    blocks: Blocks = None,
    local_extent: LocalExtentOption = LocalParams.extent,
    local_decay: LocalDecayOption = LocalParams.decay,
    crs: Crs = None,
    resolution: Resolution = None,
    collection_id: Annotated[str | None, typer.Option(metavar="ID", help="Id of the output collection.")] = None,
    format: Annotated[
        str,
        typer.Option(
            metavar=choices(OUTPUT_FORMATS),
            help="cog: a corrected COG per input asset and an item per input item; zarr: every image "
            "in one Zarr store on the common grid (OUT/cube-<digest>.zarr) and one datacube item.",
        ),
    ] = OutputOptions.format,
    publish: Annotated[
        str | None, typer.Option(metavar="URL", help="STAC API URL (transactions) to add the outputs to.")
    ] = None,
    workers: WorkersOption = ExecutionOptions.workers,
    scheduler: Scheduler = None,
    resume: Resume = ExecutionOptions.resume,
    min_overlap: MinOverlap = ModelOptions.min_overlap,
    cloud_mask: CloudMaskOption = MaskOptions.cloud_mask,
    reflectance_scale: ReflectanceScale = None,
    reflectance_offset: ReflectanceOffset = 0.0,
    sensor: SensorPreset = None,
    pif: Pif = None,
    exclude: Exclude = None,
    pif_threshold: PifThreshold = PifOptions.threshold,
    pif_min_share: PifMinShare = PifOptions.min_share,
    holdout: Holdout = None,
    estimator: Estimator = ModelOptions.estimator,
    overlap_pixels: OverlapPixels = None,
    fidelity_every: FidelityEvery = OutputOptions.fidelity_every,
    chunk_size: ChunkSize = ExecutionOptions.chunk_size,
    on_error: Annotated[
        str,
        typer.Option(
            metavar=choices(ON_ERROR),
            help="fail: stop at the first item that cannot be read or written, or leave such "
            "items out (skip), finish the rest and list them (warnings and OUT/stacrrn-manifest.json).",
        ),
    ] = OutputOptions.on_error,
    mosaic: Annotated[
        bool,
        typer.Option(
            "--mosaic", help="Then seamlines and a mosaic of the outputs (OUT/mosaic/).", rich_help_panel="Mosaic"
        ),
    ] = False,
    feather: Feather = 32.0,
    priority: Priority = None,
    seams_mode: SeamMode = "center",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Search, normalize and publish: corrected COGs, block maps, model and STAC items to OUT."""
    from stacrrn.pipeline.execution.parallel import connect
    from stacrrn.pipeline.run import run

    search = make_search(
        stac,
        catalog,
        item_files,
        collection,
        bbox,
        datetime,
        query,
        filter_,
        ids,
        max_items,
        timeout,
        allow_local_hrefs=allow_local_hrefs,
    )
    pifs = pif_options(pif, exclude, pif_threshold, holdout, pif_min_share)
    options = RunOptions.of(
        assets=_split(assets),
        mode=mode,
        neighbours=neighbours,
        star=star,
        references=reference,
        method=method,
        block_size=block_size,
        n_blocks=blocks,
        local_params=local_params(local_extent, local_decay),
        crs=crs,
        resolution=resolution,
        workers=workers,
        min_overlap=min_overlap,
        collection_id=collection_id,
        format=format,
        publish=publish,
        resume=resume,
        cloud_mask=cloud_mask,
        reflectance=reflectance(reflectance_scale, reflectance_offset, sensor),
        pif=pifs,
        estimator=estimator,
        overlap_pixels=overlap_pixels,
        on_error=on_error,
        fidelity_every=fidelity_every,
        chunk_size=chunk_size,
    )
    if mosaic and options.output.format != "cog":
        raise ParameterError("--mosaic blends the corrected COGs: use it with --format cog")
    with connect(scheduler, workers) as engine:
        result = with_progress(quiet, lambda progress: run(search, out, options, workers=engine, progress=progress))
    made = None
    if mosaic:
        from stacrrn.pipeline.mosaic.mosaic import mosaic_of_run

        made = with_progress(
            quiet,
            lambda progress: mosaic_of_run(
                result.items,
                result.out,
                assets=_split(assets),
                feather=feather,
                priority=parse_priority(priority),
                seams=seams_mode,
                workers=workers,
                progress=progress,
            ),
        )
    if quiet:
        print_warnings([w for w in result.warnings if w.startswith("skipped item")])
        return
    labels = result.items[0]["properties"]["rrn:bands"]
    print_model_table(result.model, labels, f"model {result.model_href}")
    if "holdout" in result.model.quality or mode == "timeseries":
        print_quality_table(result.model, labels)
    print_fidelity_table(result.model)
    what = "a Zarr datacube and its item" if options.output.format == "zarr" else "items with corrected COGs"
    count = "" if options.output.format == "zarr" else f"{len(result.items) - len(result.reused)} "
    console.print(
        f"wrote {count}{what} to {result.out}"
        + (f" ({len(result.reused)} kept from a previous run)" if result.reused else "")
        + ("; statistics reused from cache" if result.statistics_reused else "")
        + f"; collection {result.collection_href}"
        + (f"; published to {result.published}" if result.published else ""),
        highlight=False,
        soft_wrap=True,
    )
    print_warnings(result.warnings)
    if made is not None:
        print_mosaic(made)


@app.command("catalog")
@handle_errors
def catalog_command(
    inputs: Annotated[list[Path], typer.Argument(help="Rasters to publish, one item each.", show_default=False)],
    out: Annotated[str, typer.Option("--out", "-o", help="Folder or s3://bucket/prefix.")],
    collection_id: Annotated[str, typer.Option(help="Collection id.")] = "scenes",
    bands: Annotated[
        str | None, typer.Option(help="Band names (eo:common_name where they are), comma-separated.")
    ] = None,
    split_bands: Annotated[bool, typer.Option(help="One single-band asset per band.")] = False,
    datetime: Annotated[
        str | None,
        typer.Option(
            "--datetime",
            help="One RFC 3339 datetime for every item, overriding any date of the files "
            "[default: each file's acquisition date (--datetime-from-name, else its metadata), else now].",
            show_default=False,
        ),
    ] = None,
    datetime_from_name: Annotated[
        str | None,
        typer.Option(
            help="strftime-style pattern of the acquisition date in the file names: %Y%m%d finds 20210326 in "
            "Landsat_20210326.tif (%Y %y %m %d %j %H %M %S %f); a name without such a date is an error "
            "[default: dates from the files' metadata, .IMD or _MTL.txt beside them].",
            metavar="PATTERN",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish local rasters as COGs with STAC items and a collection (to search them with `run`)."""
    from pystac.utils import str_to_datetime

    from stacrrn.io.raster import open_raster, require_lonlat
    from stacrrn.pipeline.outputs.catalog import catalog_rasters

    when = None
    if datetime:
        try:
            when = [str_to_datetime(datetime)] * len(inputs)
        except ValueError:
            raise ParameterError(f"--datetime {datetime!r} is not an RFC 3339 date-time") from None
    for path in inputs:  # items need footprints in longitude/latitude: check before anything is written
        require_lonlat(open_raster(path))
    warnings: list[str] = []
    _, items = catalog_rasters(
        [str(p) for p in inputs],
        out,
        collection_id,
        band_names=_split(bands),
        split_bands=split_bands,
        datetimes=when,
        datetime_from_name=datetime_from_name,
        warnings=warnings,
    )
    console.print(f"wrote {len(items)} items and {out.rstrip('/')}/collection.json", highlight=False)
    print_warnings(warnings)


__all__ = ["catalog_command", "run_command", "search_command"]
