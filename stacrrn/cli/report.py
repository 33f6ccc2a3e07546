"""``stacrrn report``: an HTML report (and PNG figures) of a run's outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stacrrn.cli.common import RgbOption, app, console, handle_errors, print_warnings, rgb_bands


@app.command("report")
@handle_errors
def report_command(
    run: Annotated[
        str,
        typer.Argument(
            help="Output of `stacrrn match` or `stacrrn run`: folder, s3:// or http(s):// prefix, "
            "or its collection.json or model JSON.",
            show_default=False,
            metavar="RUN",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder (default: RUN/report, or ./stacrrn-report for a remote RUN)."),
    ] = None,
    rgb: RgbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only where the report is.")] = False,
) -> None:
    """Write a self-contained HTML report of RUN (figures embedded, also saved as PNG files)."""
    from stacrrn.report import build_report

    result = build_report(run, out, rgb=rgb_bands(rgb))
    if not quiet:
        print_warnings(list(result.notes))
        console.print(f"figures: {', '.join(str(p) for p in result.pngs)}", highlight=False, soft_wrap=True)
    typer.echo(str(result.html))
