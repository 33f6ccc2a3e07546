"""``stacrrn demo``: the embedded default job on loopback S3 and STAC API servers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from stacrrn.cli.common import (
    RgbOption,
    WorkersOption,
    app,
    console,
    handle_errors,
    print_model_table,
    print_warnings,
    rgb_bands,
    with_progress,
)
from stacrrn.options import ExecutionOptions


@app.command("demo")
@handle_errors
def demo_command(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Local folder for scenes and a copy of the results.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Folder of overlapping GeoTIFFs to use instead of generated scenes (or set STACRRN_DEMO_DATA).",
        ),
    ] = None,
    gradient: Annotated[float, typer.Option(help="Planar gradient amplitude injected per generated tile.")] = 0.1,
    distort: Annotated[
        bool, typer.Option(help="With --data: inject known gains/offsets (first image untouched) and score.")
    ] = True,
    workers: WorkersOption = ExecutionOptions.workers,
    rgb: RgbOption = None,
) -> None:
    """Publish scenes to a loopback S3 + STAC API, normalize them from a STAC search, and score the result."""
    from stacrrn.cli.demo_job import run_demo

    folder = out or Path(tempfile.mkdtemp(prefix="stacrrn-demo-"))
    env_data = os.environ.get("STACRRN_DEMO_DATA")
    source = data or (Path(env_data) if env_data else None)
    if source:
        what = f"GeoTIFFs of {source}" + (" with known gains/offsets injected" if distort else "")
    else:
        what = "9 generated tiles with known gains, offsets and gradients"
    console.print(f"scenes: {what}; starting loopback S3 (moto) and STAC API (rustac serve)", highlight=False)
    demo = with_progress(
        False, lambda progress: run_demo(folder, source, gradient, workers, progress, distort, rgb_bands(rgb))
    )
    result = demo.result
    print_model_table(result.model, result.items[0]["properties"]["rrn:bands"], f"model {result.model_href}")
    console.print(
        f"searched {demo.stac_url} (STAC API) and read COGs from S3 at {demo.s3_endpoint}; "
        f"wrote {len(result.items)} items, corrected COGs and block maps to {result.out} "
        f"(collection {result.collection_href}); local copy in {demo.mirror}",
        highlight=False,
    )
    if demo.gain_error is not None:
        console.print(
            f"recovered gains: max relative error {100 * demo.gain_error:.3f}% (truth known)", highlight=False
        )
    if demo.truth_error is not None:
        before, after = demo.truth_error
        console.print(
            f"pixel RMSE to truth (% of its std, after one common affine fit): inputs {100 * before.mean():.2f}%"
            f" -> outputs {100 * after.mean():.2f}% (per band: "
            + ", ".join(f"{100 * b:.2f} -> {100 * a:.2f}" for b, a in zip(before, after, strict=True))
            + ")",
            highlight=False,
        )
    console.print(f"report: {demo.report} (open it in a browser)", highlight=False)
    print_warnings(result.warnings)
