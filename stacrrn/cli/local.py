"""``stacrrn match``: normalize local rasters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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
    with_progress,
)
from stacrrn.cli.masking import (
    PANEL,
    BandNames,
    Estimator,
    Exclude,
    Holdout,
    Masks,
    Pif,
    PifMinShare,
    PifThreshold,
    ReflectanceOffset,
    ReflectanceScale,
    SensorPreset,
    parse_masks,
    pif_options,
    print_quality_table,
    reflectance,
    split,
)
from stacrrn.core.settings import LocalParams
from stacrrn.options import (
    LOCAL_CLOUD_MASKS,
    ExecutionOptions,
    InputOptions,
    MaskOptions,
    ModelOptions,
    OutputOptions,
    PifOptions,
    RunOptions,
)

if TYPE_CHECKING:
    from stacrrn.pipeline.match import MatchResult


DatetimeFromName = Annotated[
    str | None,
    typer.Option(
        help="strftime-style pattern of the acquisition date in the file names: %Y%m%d finds 20210326 in "
        "Landsat_20210326.tif (%Y %y %m %d %j %H %M %S %f). It orders a time series; a name without such "
        "a date is an error [default: dates from the files' metadata, .IMD or _MTL.txt beside them].",
        metavar="PATTERN",
        show_default=False,
    ),
]


def print_summary(result: MatchResult, timeseries: bool = False) -> None:
    """Print per-band gains/offsets and overlap consistency before/after, then what was written."""
    model = result.model
    print_model_table(model, [str(b) for b in model.bands], f"model {result.model_path}")
    if "holdout" in model.quality or timeseries:
        print_quality_table(model, [str(b) for b in model.bands])
    print_fidelity_table(model)
    clipped = sum(sum(r.clipped) for r in result.outputs)
    skipped = sum(r.skipped for r in result.outputs)
    console.print(
        f"wrote {len(result.outputs) - skipped} corrected COGs to {Path(result.model_path).parent}"
        + (f" ({skipped} kept from a previous run)" if skipped else "")
        + (f"; {clipped} values clipped to the data type" if clipped else "")
        + ("; statistics reused from cache" if result.statistics_reused else ""),
        highlight=False,
        soft_wrap=True,
    )
    print_warnings(result.warnings)


@app.command("match")
@handle_errors
def match_command(
    inputs: Annotated[list[Path], typer.Argument(help="Overlapping rasters to normalize.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference", "-r", metavar="NAME", help="Reference image (name, file name or path); repeatable."
        ),
    ] = None,
    method: MethodOption = ModelOptions.method,
    block_size: BlockSize = None,
    blocks: Blocks = None,
    local_extent: LocalExtentOption = LocalParams.extent,
    local_decay: LocalDecayOption = LocalParams.decay,
    mode: ModeOption = InputOptions.mode,
    neighbours: Neighbours = InputOptions.neighbours,
    star: Star = InputOptions.star,
    datetime_from_name: DatetimeFromName = None,
    bands: Annotated[
        str | None, typer.Option(metavar="BAND,BAND,...", help="Comma-separated 1-based bands, e.g. 1,2,3.")
    ] = None,
    crs: Crs = None,
    resolution: Resolution = None,
    workers: WorkersOption = ExecutionOptions.workers,
    scheduler: Scheduler = None,
    resume: Resume = ExecutionOptions.resume,
    min_overlap: MinOverlap = ModelOptions.min_overlap,
    cloud_mask: Annotated[
        str,
        typer.Option(
            metavar=choices(LOCAL_CLOUD_MASKS),
            help="The --mask files (auto), none, or a cloud test on --band-names blue and red (spectral).",
            rich_help_panel=PANEL,
        ),
    ] = MaskOptions.cloud_mask,
    mask: Masks = None,
    band_names: BandNames = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Normalize INPUTS and write OUT/<name>.tif (COG) for each, plus the model JSON."""
    from stacrrn.pipeline.execution.parallel import connect
    from stacrrn.pipeline.inputs.plan import band_numbers
    from stacrrn.pipeline.match import match

    band_list = band_numbers(split(bands))
    pifs = pif_options(pif, exclude, pif_threshold, holdout, pif_min_share)
    options = RunOptions.of(
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
        resume=resume,
        min_overlap=min_overlap,
        cloud_mask=cloud_mask,
        reflectance=reflectance(reflectance_scale, reflectance_offset, sensor),
        pif=pifs,
        estimator=estimator,
        overlap_pixels=overlap_pixels,
        fidelity_every=fidelity_every,
        chunk_size=chunk_size,
    )
    with connect(scheduler, workers) as engine:
        result = with_progress(
            quiet,
            lambda progress: match(
                [str(p) for p in inputs],
                out,
                options,
                bands=band_list,
                masks=parse_masks(mask),
                band_names=split(band_names),
                workers=engine,
                progress=progress,
                datetime_from_name=datetime_from_name,
            ),
        )
    if not quiet:
        print_summary(result, mode == "timeseries")
