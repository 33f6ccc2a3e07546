"""Benchmark: a 50-date time series through ``stacrrn.run``, against the I/O floor of the same data.

One command::

    .venv/bin/python benchmarks/bench_timeseries.py [--dates 50] [--size 2048] [--neighbours 2] [--workers 2]

What it does and measures:

1. **Dates**: ``--dates`` 4-band uint16 images of one place (``bench_mosaic``'s truth, the
   same window for every date), each date but the first with a known per-band gain
   (0.8..1.2) and offset (-150..150); catalogued once as STAC items with a datetime each
   (local COG assets, ``OUT/timeseries/catalog``).
2. **I/O floor** (fresh interpreter): read every date's COG once and write it once as a COG
   (``bench_mosaic.stage_floor``, ``--workers`` threads).
3. **Engine** (fresh interpreter): ``stacrrn.run(items, mode="timeseries",
   neighbours=--neighbours, references=[first date], method="global+local")`` from scratch:
   statistics (pass 1), solve, corrected COGs, block maps and STAC items (pass 2). With
   ``--neighbours 0`` every pair of dates is used (N (N - 1) / 2 pairs).
4. **Peak RSS** of each interpreter, and the gain/offset recovery error of the fit.

The results are printed as a table and as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    RESULT_PREFIX,
    Layout,
    distortions,
    make_scenes,
    paired,
    peak_rss_mb,
    print_summary,
    recovery,
    run_child,
    stage_floor,
)
from bench_scaling import catalog


@dataclass(frozen=True)
class SamePlace(Layout):
    """Every "scene" is the same window of the truth: one place at many dates."""

    @property
    def mosaic(self) -> int:
        """The truth spans exactly one image."""
        return self.size

    def origin(self, k: int) -> tuple[int, int]:
        """Every date at the same place."""
        return 0, 0

    def path(self, folder: Path, k: int) -> Path:
        """File of date ``k``."""
        return folder / f"date_{k:02d}.tif"


def named_assets(items: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Links ``<item id>.tif`` to each item's COG asset (the assets all have the same file name)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    links = [folder / f"{it['id']}.tif" for it in items]
    for link, it in zip(links, items, strict=True):
        link.symlink_to(it["assets"]["image"]["href"])
    return links


def stage_engine(items: list[dict[str, Any]], out: Path, neighbours: int, workers: int) -> dict[str, Any]:
    """``stacrrn.run`` in time-series mode from scratch; seconds, peak RSS and recovery error."""
    import pystac

    from stacrrn.pipeline.run import run

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = run(
        [pystac.Item.from_dict(d) for d in items],
        str(out),
        mode="timeseries",
        neighbours=neighbours or None,
        references=[items[0]["id"]],
        method="global+local",
        workers=workers,
        resume=False,
    )
    seconds = time.perf_counter() - t0
    gains, offsets = distortions(len(items))
    fit = result.model.global_fit
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        **recovery(fit.gains, fit.offsets, gains, offsets),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one stage (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dates", type=int, default=50, help="number of dates (default 50)")
    parser.add_argument("--size", type=int, default=2048, help="image edge in pixels (default 2048)")
    parser.add_argument("--neighbours", type=int, default=2, help="nearest dates paired (0: all pairs; default 2)")
    parser.add_argument("--workers", type=int, default=2, help="threads for both the floor and the engine")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default benchmarks/out)")
    parser.add_argument("--repeat", type=int, default=1, help="floor/engine pairs run in turn; the median is reported")
    parser.add_argument("--stage", choices=["floor", "engine"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.out.resolve() / "timeseries"
    if args.stage:
        items = json.loads((work / "catalog" / "items.json").read_text())["items"]
        if args.stage == "floor":
            result = stage_floor(named_assets(items, work / "floor-inputs"), work / "floor", args.workers)
        else:
            result = stage_engine(dated_catalog_of(items), work / "normalized", args.neighbours, args.workers)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    layout = SamePlace(args.dates, args.size)
    paths, gen_seconds, written = make_scenes(layout, work / "dates", args.workers)
    print(f"dates: {args.dates} x {args.size}^2 px ({written} generated in {gen_seconds:.0f} s)", flush=True)
    catalog(paths, work / "catalog")
    base = [sys.executable, str(Path(__file__).resolve()), "--dates", str(args.dates), "--size", str(args.size)]
    base += ["--neighbours", str(args.neighbours), "--workers", str(args.workers), "--out", str(args.out.resolve())]
    print(f"running the I/O floor and the engine ({args.repeat}x) ...", flush=True)
    runs = paired(lambda stage: run_child([*base, "--stage", stage]), "floor", "engine", args.repeat)
    floor, engine = runs["floor"], runs["engine"]
    summary = {
        "dates": args.dates,
        "size": args.size,
        "neighbours": args.neighbours or "all",
        "workers": args.workers,
        "input_gb_uncompressed": round(args.dates * args.size**2 * 4 * 2 / 1e9, 3),
        "floor_seconds": round(floor["seconds"], 2),
        "engine_seconds": round(engine["seconds"], 2),
        "ratio_engine_floor": round(engine["seconds"] / floor["seconds"], 2),
        "ratios_engine_floor": runs["ratios"],
        "engine_peak_rss_mb": round(engine["peak_rss_mb"]),
        "floor_peak_rss_mb": round(floor["peak_rss_mb"]),
        "max_gain_rel_error": engine["max_gain_rel_error"],
        "max_offset_error_dn": engine["max_offset_error_dn"],
    }
    print_summary(summary)
    return 0


def dated_catalog_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The catalogued items with their dates (the catalog is written without them)."""
    for k, item in enumerate(items):
        item["properties"]["datetime"] = f"{1975 + k}-07-01T00:00:00Z"
    return items


if __name__ == "__main__":
    sys.exit(main())
