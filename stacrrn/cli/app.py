"""The ``stacrrn`` command: thin typer front end over :mod:`stacrrn.pipeline`.

One handler maps the error tree to exit codes and one-line messages: user errors exit
with code 2 and print no traceback.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from stacrrn.core.model import METHODS
from stacrrn.errors import ParameterError, StacrrnError
from stacrrn.pipeline.demo import run_demo
from stacrrn.pipeline.match import MatchResult, match
from stacrrn.pipeline.progress import Progress as ProgressCallback
from stacrrn.pipeline.progress import no_progress

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="stacrrn",
    help="Relative radiometric normalization of overlapping rasters (Yu et al. 2017 global-to-local).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn stacrrn errors into one line on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except StacrrnError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


class RichProgress:
    """A :class:`stacrrn.pipeline.progress.Progress` drawn with rich (silent when quiet)."""

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


def _parse_bands(bands: str | None) -> list[int] | None:
    if not bands:
        return None
    try:
        return [int(b) for b in bands.split(",") if b.strip()]
    except ValueError:
        raise ParameterError(f"--bands must be comma-separated band numbers like 1,2,3; got {bands!r}") from None


def print_summary(result: MatchResult) -> None:
    """Print per-band gains/offsets and overlap consistency before/after."""
    model = result.model
    q = model.quality
    table = Table(title=f"stacrrn {model.method}: {len(model.images)} images, model {result.model_path}")
    for col in (
        "band",
        "gain min..max",
        "offset min..max",
        "overlap RMSE (affine part) before -> after",
        "overlap block-mean RMS diff before -> after",
    ):
        table.add_column(col, justify="right")
    g, o = model.global_fit.gains, model.global_fit.offsets
    for k, band in enumerate(model.bands):
        table.add_row(
            str(band),
            f"{g[:, k].min():.4f}..{g[:, k].max():.4f}",
            f"{o[:, k].min():.2f}..{o[:, k].max():.2f}",
            f"{q['before']['rmse'][k]:.2f} -> {q['after']['rmse'][k]:.2f}",
            f"{q['before']['block_mean_diff'][k]:.2f} -> {q['after']['block_mean_diff'][k]:.2f}",
        )
    Console().print(table)
    clipped = sum(sum(r.clipped) for r in result.outputs)
    skipped = sum(r.skipped for r in result.outputs)
    console.print(
        f"wrote {len(result.outputs) - skipped} corrected COGs to {Path(result.model_path).parent}"
        + (f" ({skipped} kept from a previous run)" if skipped else "")
        + (f"; {clipped} values clipped to the data type" if clipped else "")
        + ("; statistics reused from cache" if result.statistics_reused else ""),
        highlight=False,
    )
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def _with_progress(quiet: bool, job: Callable[[ProgressCallback], R]) -> R:
    """Run ``job(progress)`` with rich progress bars on a terminal, silently otherwise."""
    if quiet or not console.is_terminal:
        return job(no_progress)
    columns = (TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        return job(RichProgress(bar))


@app.command("match")
@handle_errors
def match_command(
    inputs: Annotated[list[Path], typer.Argument(help="Overlapping rasters to normalize.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    reference: Annotated[
        list[str] | None,
        typer.Option("--reference", "-r", help="Reference image (name, file name or path); repeatable."),
    ] = None,
    method: Annotated[str, typer.Option(help=f"One of: {', '.join(METHODS)}.")] = "global+local",
    block_size: Annotated[float | None, typer.Option(help="Local block edge in CRS units.")] = None,
    blocks: Annotated[int | None, typer.Option(help="Local blocks along the longer side (default 32).")] = None,
    bands: Annotated[str | None, typer.Option(help="Comma-separated 1-based bands, e.g. 1,2,3.")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the common grid (default: first input's).")] = None,
    resolution: Annotated[float | None, typer.Option(help="Pixel size of the common grid.")] = None,
    workers: Annotated[int, typer.Option(help="Threads for the pixel passes.")] = 1,
    resume: Annotated[bool, typer.Option(help="Keep outputs already made with the same model.")] = False,
    min_overlap: Annotated[int, typer.Option(help="Ignore overlaps with fewer valid pixels.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Normalize INPUTS and write OUT/<name>.tif (COG) for each, plus the model JSON."""
    band_list = _parse_bands(bands)
    result = _with_progress(
        quiet,
        lambda progress: match(
            [str(p) for p in inputs],
            out,
            references=reference,
            method=method,
            block_size=block_size,
            n_blocks=blocks,
            bands=band_list,
            crs=crs,
            resolution=resolution,
            workers=workers,
            resume=resume,
            min_overlap=min_overlap,
            progress=progress,
        ),
    )
    if not quiet:
        print_summary(result)


@app.command("demo")
@handle_errors
def demo_command(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for scenes and results.")] = None,
    gradient: Annotated[float, typer.Option(help="Planar gradient amplitude injected per tile.")] = 0.0,
    workers: Annotated[int, typer.Option(help="Threads for the pixel passes.")] = 2,
) -> None:
    """Generate a 3x3 sample mosaic with known distortions, normalize it, and score it against truth."""
    folder = out or Path(tempfile.mkdtemp(prefix="stacrrn-demo-"))
    console.print(f"sample scenes: 9 tiles in {folder / 'scenes'}, known distortions, reference tile_00")
    demo = _with_progress(False, lambda progress: run_demo(folder, gradient, workers, progress))
    print_summary(demo.result)
    if demo.gain_error is not None:
        console.print(
            f"recovered gains: max relative error {100 * demo.gain_error:.3f}% (truth known)", highlight=False
        )
    rel = demo.truth_error
    console.print(
        f"pixel RMSE to truth: {100 * rel.mean():.2f}% of the truth's std (per band: "
        + ", ".join(f"{100 * v:.2f}%" for v in rel)
        + ")",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``stacrrn`` console script."""
    app()
