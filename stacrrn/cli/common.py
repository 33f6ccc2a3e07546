"""What every ``stacrrn`` command shares: the typer app, the error handler, progress bars.

One handler maps the error tree to exit codes and one-line messages: user errors exit
with code 2 and print no traceback, and what libraries would print meanwhile (Python
warnings, GDAL and PROJ messages) goes to the log instead (:func:`~stacrrn.cli.logs.library_output`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from statistics import fmean
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from stacrrn._version import __version__
from stacrrn.cli.logs import OUTPUT, JsonProgress, configure_logging, library_output, log
from stacrrn.core.settings import LOCAL_EXTENTS, METHODS, LocalExtent, LocalParams
from stacrrn.errors import ParameterError, StacrrnError, report
from stacrrn.io.hrefs import redact_text
from stacrrn.options import MODES
from stacrrn.pipeline.execution.progress import Progress as ProgressCallback
from stacrrn.pipeline.execution.progress import no_progress

if TYPE_CHECKING:
    from stacrrn.core.model import RRNModel

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="stacrrn",
    help="Relative radiometric normalization of overlapping rasters (Yu et al. 2017 global-to-local).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: rich panels cost ~0.15 s per start (benchmarks/bench_startup.py)
)
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    """``--version``: print the version and stop."""
    if value:
        typer.echo(f"stacrrn {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Show what the pipeline does (-vv: also debug).")
    ] = 0,
    log_json: Annotated[
        bool,
        typer.Option(
            "--log-json", help="Log JSON lines on stderr (records, progress events, warnings, errors) for batch use."
        ),
    ] = False,
) -> None:
    """Relative radiometric normalization of overlapping rasters (Yu et al. 2017 global-to-local)."""
    configure_logging(verbose, log_json)


def choices(values: Sequence[str]) -> str:
    """A metavar listing an option's choices: ``[a|b|c]``."""
    return f"[{'|'.join(values)}]"


Scheduler = Annotated[
    str | None,
    typer.Option(
        metavar="threads|local|ADDRESS",
        help="Where the pixel passes run: 'threads' (--workers threads here), 'local' (a Dask LocalCluster of "
        "--workers processes) or a Dask scheduler address such as tcp://10.0.0.5:8786 "
        "[default: $DASK_SCHEDULER_ADDRESS, else threads].",
        show_default=False,
    ),
]

OverlapPixels = Annotated[
    bool | None,
    typer.Option(
        "--overlap-pixels/--no-overlap-pixels",
        help="Read the overlaps once more for the pixelwise overlap RMSE and MAE before and after the whole model "
        "[default: when the overlaps hold no more pixels than the images: mosaics, not time series].",
        show_default=False,
    ),
]

ChunkSize = Annotated[
    int,
    typer.Option(
        metavar="PIXELS",
        help="Edge of the square chunks (common-grid pixels) processed as one task; memory per worker grows "
        "with its square, results do not change.",
    ),
]

FidelityEvery = Annotated[
    int,
    typer.Option(
        metavar="N",
        help="Measure the outputs' fidelity (correlation, spectral angle, SSIM) on one row of 8x8 windows "
        "in every N; 1 measures every pixel (about a quarter more pass-2 time).",
    ),
]

LocalExtentOption = Annotated[
    str,
    typer.Option(
        metavar=choices(LOCAL_EXTENTS),
        help="Where the local step corrects: overlaps (default; fields supported by overlaps, exactly 1 from "
        "--local-decay blocks away from them) or image (smooth fields across whole images, for image-wide "
        "distortions such as vignetting or BRDF gradients; opt-in).",
    ),
]

LocalDecayOption = Annotated[
    float,
    typer.Option(
        metavar="BLOCKS",
        help="With --local-extent overlaps: distance in blocks from the nearest block with overlap evidence at "
        "which the local field reaches 1 (at least 1).",
    ),
]


RgbOption = Annotated[
    str | None,
    typer.Option(
        metavar="R,G,B",
        help="Quick-look bands R,G,B (or one for grey): labels, common names or 1-based positions "
        "(default: red, green, blue by common name or description, else the first three).",
    ),
]


def rgb_bands(value: str | None) -> list[str] | None:
    """The ``--rgb`` bands, or ``None``."""
    return [b.strip() for b in value.split(",") if b.strip()] if value else None


MethodOption = Annotated[
    str,
    typer.Option(
        metavar=choices(METHODS),
        help="global: a gain and offset per image and band; local: block fields only; global+local: both.",
    ),
]
BlockSize = Annotated[float | None, typer.Option(metavar="SIZE", help="Local block edge in CRS units.")]
Blocks = Annotated[int | None, typer.Option(metavar="N", help="Local blocks along the longer side (default 32).")]
ModeOption = Annotated[
    str,
    typer.Option(
        metavar=choices(MODES),
        help="mosaic: pairs where footprints overlap; timeseries: one place, many dates, in date order.",
    ),
]
Neighbours = Annotated[
    int | None,
    typer.Option(metavar="N", help="Time series: pair each date with this many nearest dates (default all)."),
]
Star = Annotated[
    bool, typer.Option(help="Time series: pair every date with the reference dates (with --neighbours: also).")
]
Crs = Annotated[str | None, typer.Option(metavar="CRS", help="CRS of the common grid (default: the first image's).")]
Resolution = Annotated[float | None, typer.Option(metavar="SIZE", help="Pixel size of the common grid.")]
WorkersOption = Annotated[
    int, typer.Option(metavar="N", help="Concurrent chunks and images (threads or Dask workers).")
]
Resume = Annotated[bool, typer.Option(help="Reuse cached statistics and outputs made with the same model.")]
MinOverlap = Annotated[int, typer.Option(metavar="PIXELS", help="Ignore overlaps with fewer valid pixels.")]


def local_params(extent: str, decay: float) -> LocalParams:
    """The :class:`LocalParams` of ``--local-extent`` and ``--local-decay``.

    Raises
    ------
    ParameterError
        For an extent not in ``LOCAL_EXTENTS`` or a decay that is not a finite number of blocks >= 1
        (checked by :class:`LocalParams`).
    """
    return LocalParams(extent=cast(LocalExtent, extent), decay=decay)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn stacrrn errors into one line on stderr and the error's exit code.

    The command runs inside :func:`~stacrrn.cli.logs.library_output`: library warnings and
    GDAL/PROJ messages go to the log, so bad input prints the ``error:`` line and nothing else.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with library_output():
                return fn(*args, **kwargs)
        except StacrrnError as exc:
            err = report(exc)
            if OUTPUT.log_json:
                fields = {"event": "error", "error": err.error, "exit_code": err.exit_code}
                log.error("%s", err.message, extra={"fields": fields})
            else:
                console.print(f"[red]error:[/red] {escape(err.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper


class RichProgress:
    """A :class:`stacrrn.pipeline.execution.progress.Progress` drawn with rich (silent when quiet)."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Advance the bar of ``stage``."""
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def parse_named(values: list[str] | None, option: str, form: str, example: str) -> dict[str, str]:
    """``NAME=VALUE`` option values -> ``{name: value}``.

    Raises
    ------
    ParameterError
        For a value without a name or a value, saying the expected ``form`` with an ``example``.
    """
    out = {}
    for v in values or []:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise ParameterError(f"{option} {v!r}: write {form}, e.g. {example}")
        out[name] = value
    return out


def with_progress(quiet: bool, job: Callable[[ProgressCallback], R]) -> R:
    """Run ``job(progress)`` with rich progress bars on a terminal, progress events with ``--log-json``."""
    if OUTPUT.log_json:
        return job(JsonProgress())
    if quiet or not console.is_terminal:
        return job(no_progress)
    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        return job(RichProgress(bar))


def table_console() -> Console:
    """Console for tables on stdout: the terminal's width, or wide enough not to wrap in a pipe or file."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def print_model_table(model: RRNModel, labels: list[str], where: str) -> None:
    """Print per-band gain/offset ranges and overlap consistency before -> after."""
    q = model.quality
    pixels = q.get("overlap_pixels")
    table = Table(title=f"stacrrn {model.method}: {len(model.images)} images, {where}")
    columns = ["band", "gain min..max", "offset min..max"]
    if pixels:
        columns += ["overlap RMSE before -> after", "overlap MAE before -> after"]
    else:
        columns += ["overlap RMSE (affine part) before -> after"]
    for col in (*columns, "overlap block-mean RMS diff before -> after"):
        table.add_column(col, justify="right")
    g, o = model.global_fit.gains, model.global_fit.offsets
    for k, label in enumerate(labels):
        if pixels:
            cells = [_before_after(pixels["before"][m][k], pixels["after"][m][k]) for m in ("rmse", "mae")]
        else:
            cells = [_before_after(q["before"]["rmse"][k], q["after"]["rmse"][k])]
        table.add_row(
            label,
            f"{g[:, k].min():.4f}..{g[:, k].max():.4f}",
            f"{o[:, k].min():.2f}..{o[:, k].max():.2f}",
            *cells,
            _before_after(q["before"]["block_mean_diff"][k], q["after"]["block_mean_diff"][k]),
        )
    table_console().print(table)
    for line in local_step_lines(model, labels):
        console.print(line, highlight=False, soft_wrap=True)


def local_step_lines(model: RRNModel, labels: Sequence[str] | None = None) -> list[str]:
    """What the local step did, one line per band: images keeping a field and the held-out errors.

    Empty for a model without a local step; one line for image-wide fields, which are not
    cross-validated.
    """
    settings = model.quality.get("settings", {}).get("local")
    if settings is None:
        return []
    table = model.quality.get("local_validation")
    if not table:
        return ["local step: fields across whole images (--local-extent image), not cross-validated"]
    lines = [f"local step: fields within {settings['decay']:g} blocks of the overlaps, judged on held-out blocks"]
    for k, band in enumerate(table["bands"]):
        scored = [row for row in band["images"] if row["heldout_blocks"]]
        kept = [row for row in scored if row["kept"]]
        label = labels[k] if labels else str(band["band"])
        if not scored:
            lines.append(f"  band {label}: {_no_local_reason(model, k)}; global model")
            continue
        g = fmean(row["global_error"] for row in scored)
        loc = fmean(row["local_error"] for row in scored)
        lines.append(
            f"  band {label}: local fields kept for {len(kept)} of {len(scored)} images; held-out overlap error "
            f"/ band spread, mean over images: global {g:.3f}, local {loc:.3f}"
        )
    return lines


def _no_local_reason(model: RRNModel, band: int) -> str:
    """Why no image of a band could be judged: its overlaps already agree, or no block qualified."""
    before = model.quality.get("before", {}).get("block_mean_diff", [None] * (band + 1))[band]
    if before is not None and before == 0.0:
        return "the overlaps already agree (block-mean RMS difference 0)"
    return "no overlap block with enough valid pixels to judge local fields"


def _before_after(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None else f"{before:.2f} -> {after:.2f}"


def print_fidelity_table(model: RRNModel) -> None:
    """Per image (per date, in date order, for a time series): how faithful each output is to its input."""
    q = model.quality
    fidelity = q.get("fidelity", {})
    if not fidelity:
        return
    rows = sorted(q.get("images", []), key=lambda row: row.get("datetime") or "")
    dated = any("datetime" in row for row in rows)
    table = Table(title=f"per {'date' if dated else 'image'}: fidelity of the output to its input (over bands)")
    for col in (
        "image",
        *(["date"] if dated else []),
        "correlation min",
        "SSIM min..max",
        "spectral angle °",
        "clipped %",
    ):
        table.add_column(col, justify="right")
    for row in rows:
        f = fidelity.get(row["name"])
        if f is None:
            continue
        ssim = [v for v in f["ssim"] if v is not None]
        corr = [v for v in f["correlation"] if v is not None]
        angle = f.get("spectral_angle_deg")
        table.add_row(
            row["name"],
            *([str(row.get("datetime", ""))[:10]] if dated else []),
            f"{min(corr):.5f}" if corr else "-",
            f"{min(ssim):.4f}..{max(ssim):.4f}" if ssim else "-",
            "-" if angle is None else f"{angle:.3f}",
            f"{100 * max(f['clipped_fraction']):.3f}",
        )
    table_console().print(table)


def print_warnings(warnings: list[str]) -> None:
    """One yellow line per warning on stderr (a warning record with ``--log-json``); URLs lose their queries."""
    for w in map(redact_text, warnings):
        if OUTPUT.log_json:
            log.warning("%s", w, extra={"fields": {"event": "warning"}})
            continue
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False, soft_wrap=True)
