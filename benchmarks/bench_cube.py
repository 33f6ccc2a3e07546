"""Benchmark: a normalized 50-date datacube three ways, peak RSS against the size of the cube.

One command::

    .venv/bin/python benchmarks/bench_cube.py [--dates 50] [--size 2048] [--workers 2] [--repeat 1] [--out DIR]

What it does and measures:

1. **Dates**: ``bench_timeseries``' series, ``--dates`` 4-band uint16 images of one place, each
   date but the first with a known per-band gain (0.8..1.2) and offset (-150..150), in
   ``OUT/timeseries/dates`` (shared with ``bench_timeseries.py``, reused when current),
   catalogued as STAC items with local COG assets and one date a year (``OUT/cube/catalog``).
2. **Jobs**, each in a fresh process started through ``bench_mosaic.run_measured`` (its own
   peak RSS, wall time from launch to exit), all with ``mode="timeseries"``,
   ``neighbours=2``, ``method="global+local"``, the first date as reference and
   ``--workers`` workers, from scratch:

   - ``cog``: ``stacrrn.run(items, OUT/cube/runs/cog, format="cog")``, one corrected COG per
     input asset (the reference job);
   - ``zarr``: ``stacrrn.run(items, OUT/cube/runs/zarr, format="zarr")``, one Zarr v2 store
     ``cube-<digest>.zarr`` (chunks of one image by ``chunk_size`` squared) and its item;
   - ``xarray``: ``odc.stac.load(items, bands=..., chunks={"x": 1024, "y": 1024},
     groupby="id")``, ``stacrrn.xarray.fit`` (pass 1 and solve), then
     ``stacrrn.xarray.apply(ds, model, dtype="source").to_zarr(OUT/cube/runs/xarray.zarr)``
     computed by Dask's threaded scheduler with ``--workers`` threads.

   ``--repeat R`` runs the three in turn R times; seconds are the median over rounds, the
   ratios to ``cog`` are per round (median reported), peak RSS the largest over rounds.
3. **Memory**: each job's peak RSS against the size of the cube held in memory (dates x 4
   bands x size² x 2 bytes), and its peak up to the end of pass 1 and the solve.
4. **Correctness**: the ``zarr`` store's pixels of the first, middle and last dates equal
   the ``cog`` outputs of those dates bit for bit (the dates share one grid), the ``xarray``
   store's equal the ``zarr`` store's, and each job's fit recovers the injected gains
   (``max |gain_fitted * gain_injected - 1|``).

The results are printed as a table and as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    RESULT_PREFIX,
    compile_stacrrn,
    distortions,
    make_scenes,
    peak_rss_mb,
    print_summary,
    recovery,
    run_measured,
)
from bench_scaling import BANDS, catalog
from bench_timeseries import SamePlace, dated_catalog_of

JOBS = ("cog", "zarr", "xarray")
"""The jobs of a round, in the order they run; ``cog`` is the reference of the ratios."""
NEIGHBOURS = 2
"""Nearest dates paired by every job (as ``bench_timeseries.py``'s default)."""
METHOD = "global+local"
LOAD_CHUNK = 1024
"""Chunk edge of ``odc.stac.load`` in the xarray job."""


def compared_dates(n: int) -> list[int]:
    """Dates whose pixels are compared between the jobs: the first, the middle and the last."""
    return sorted({0, n // 2, n - 1})


def recovery_of(gains: np.ndarray, offsets: np.ndarray) -> dict[str, float]:
    """Recovery errors of a global fit ``(dates, bands)`` against the dates' injected distortions."""
    return recovery(gains, offsets, *distortions(len(gains)))


class PassOnePeak:
    """Progress callback noting the peak RSS when pass 2 starts (pass 1, solve and overlap metrics done)."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Record the peak at the first ``apply`` report."""
        if stage == "apply" and self.peak_mb is None:
            self.peak_mb = peak_rss_mb()


def stage_run(items: list[dict[str, Any]], out: Path, fmt: str, workers: int) -> dict[str, Any]:
    """``stacrrn.run`` in time-series mode from scratch, writing COGs or one Zarr store."""
    import pystac

    from stacrrn.pipeline.run import run

    shutil.rmtree(out, ignore_errors=True)
    marker = PassOnePeak()
    t0 = time.perf_counter()
    result = run(
        [pystac.Item.from_dict(d) for d in items],
        str(out),
        mode="timeseries",
        neighbours=NEIGHBOURS,
        references=[items[0]["id"]],
        method=METHOD,
        format=fmt,
        workers=workers,
        resume=False,
        progress=marker,
    )
    seconds = time.perf_counter() - t0
    if result.statistics_reused:
        raise RuntimeError("statistics were reused; the timing would not be honest")
    fit = result.model.global_fit
    record: dict[str, Any] = {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "pass1_peak_rss_mb": marker.peak_mb,
        "digest": result.model.digest(),
        **recovery_of(fit.gains, fit.offsets),
    }
    if fmt == "zarr":
        record["store"] = result.items[0]["assets"]["zarr"]["href"]
    else:
        by_id = {it["id"]: it for it in result.items}
        record["cogs"] = {
            k: [a["href"] for a in by_id[items[k]["id"]]["assets"].values() if "data" in a.get("roles", [])]
            for k in compared_dates(len(items))
        }
    return record


def stage_xarray(items: list[dict[str, Any]], store: Path, workers: int) -> dict[str, Any]:
    """odc-stac load, ``stacrrn.xarray.fit``, then ``apply(dtype="source").to_zarr`` on Dask's threads."""
    import dask
    import odc.stac
    import pystac

    import stacrrn.xarray as sx

    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    ds = odc.stac.load(
        [pystac.Item.from_dict(d) for d in items],
        bands=BANDS,
        chunks={"x": LOAD_CHUNK, "y": LOAD_CHUNK},
        groupby="id",
    )
    first = items[0]["properties"]["datetime"][:10]  # images are named by their dates
    model = sx.fit(ds, mode="timeseries", neighbours=NEIGHBOURS, method=METHOD, references=[first], workers=workers)
    fitted, fit_peak = time.perf_counter(), peak_rss_mb()
    corrected = sx.apply(ds, model, dtype="source")
    with dask.config.set(scheduler="threads", num_workers=workers):
        corrected.to_zarr(store, mode="w", consolidated=True, zarr_format=2)
    seconds = time.perf_counter() - t0
    fit = model.global_fit
    return {
        "seconds": seconds,
        "fit_seconds": fitted - t0,
        "apply_seconds": seconds - (fitted - t0),
        "peak_rss_mb": peak_rss_mb(),
        "pass1_peak_rss_mb": fit_peak,
        "digest": model.digest(),
        "store": str(store),
        **recovery_of(fit.gains, fit.offsets),
    }


def store_date(store: str, k: int) -> np.ndarray:
    """Date ``k`` of a Zarr store's bands as written (not decoded), ``(bands, rows, cols)``.

    The bands in their order: the ``band`` coordinate of ``run``'s store (it names the bands of a
    multi-band asset ``image.1``, ``image.2``...), else :data:`BANDS` (odc-stac names them by their
    ``eo:bands`` names; a store lists its variables in alphabetical order).
    """
    import xarray as xr

    with xr.open_zarr(store, mask_and_scale=False) as raw:
        bands = [str(b) for b in raw["band"].values] if "band" in raw.coords else BANDS
        return np.asarray(raw[bands].isel(time=k).to_array("band").values)


def cog_date(hrefs: list[str]) -> np.ndarray:
    """The corrected COGs of one date, their bands stacked, ``(bands, rows, cols)``."""
    import rasterio

    parts = []
    for href in hrefs:
        with rasterio.open(href) as src:
            parts.append(src.read())
    return np.concatenate(parts)


def check_pixels(cog: dict[str, Any], zarr: dict[str, Any], xarray: dict[str, Any]) -> dict[str, Any]:
    """Compare the compared dates: the zarr store with the COGs, the xarray store with the zarr store."""
    cog_ok, xr_ok, xr_diff = [], [], 0
    for key, hrefs in cog["cogs"].items():
        k = int(key)
        ours = store_date(zarr["store"], k)
        cog_ok.append(bool(np.array_equal(ours, cog_date(hrefs))))
        theirs = store_date(xarray["store"], k)
        xr_ok.append(bool(np.array_equal(ours, theirs)))
        xr_diff = max(xr_diff, int(np.abs(ours.astype(np.int64) - theirs.astype(np.int64)).max()))
    return {
        "compared_dates": [int(k) for k in cog["cogs"]],
        "zarr_equals_cog": all(cog_ok),
        "xarray_equals_zarr": all(xr_ok),
        "xarray_zarr_max_diff_dn": xr_diff,
        "same_model_cog_zarr": cog["digest"] == zarr["digest"],
    }


def run_job(job: str, base: list[str], runs: Path) -> dict[str, Any]:
    """Run one job in a fresh process; ``run_measured``'s record with the job's own result line."""
    runs.mkdir(parents=True, exist_ok=True)
    log = runs / f"{job}.log"
    rec = run_measured([*base, "--stage", job], log)
    if rec["exit"] != 0:
        raise RuntimeError(f"{job} failed (exit {rec['exit']}): {rec['log']}")
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{job} printed no result: {rec['log']}")
    return {**rec, "job": json.loads(lines[-1][len(RESULT_PREFIX) :])}


def interleaved(run: Callable[[str], dict[str, Any]], repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Every job once per round, ``repeat`` rounds: a drifting machine slows the jobs of a round alike."""
    records: dict[str, list[dict[str, Any]]] = {job: [] for job in JOBS}
    for r in range(repeat):
        print(f"round {r + 1}/{repeat}: {', '.join(JOBS)} ...", flush=True)
        for job in JOBS:
            records[job].append(run(job))
            rec = records[job][-1]
            print(f"  {job:<7} {rec['seconds']:7.1f} s  peak RSS {rec['peak_rss_mb']:7.0f} MB", flush=True)
    return records


def table(records: dict[str, list[dict[str, Any]]], cube_mb: float) -> dict[str, Any]:
    """Print and return per job: seconds, ratio to ``cog``, peak RSS and its share of the cube's size."""
    cogs = [rec["seconds"] for rec in records["cog"]]
    out: dict[str, Any] = {}
    print(f"\n{'job':<8}{'process s':>10}{'in-job s':>10}{'/ cog':>7}{'peak RSS MB':>13}{'/ cube':>8}{'pass-1 MB':>11}")
    for job, recs in records.items():
        seconds = [rec["seconds"] for rec in recs]
        ratios = [round(s / c, 2) for s, c in zip(seconds, cogs, strict=True)]
        rss = max(rec["peak_rss_mb"] for rec in recs)
        pass1 = max(rec["job"]["pass1_peak_rss_mb"] or 0.0 for rec in recs)
        inside = statistics.median(rec["job"]["seconds"] for rec in recs)
        out[job] = {
            "seconds": round(statistics.median(seconds), 2),
            "in_job_seconds": round(inside, 2),
            "ratio_cog": statistics.median(ratios),
            "ratios_cog": ratios,
            "peak_rss_mb": round(rss),
            "peak_rss_per_cube": round(rss / cube_mb, 3),
            "pass1_peak_rss_mb": round(pass1),
        }
        o = out[job]
        print(
            f"{job:<8}{o['seconds']:>10.1f}{inside:>10.1f}{o['ratio_cog']:>7.2f}"
            f"{rss:>13.0f}{o['peak_rss_per_cube']:>8.2f}{pass1:>11.0f}"
        )
    xr_job = records["xarray"][-1]["job"]
    print(f"(xarray job: fit {xr_job['fit_seconds']:.1f} s, apply + to_zarr {xr_job['apply_seconds']:.1f} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one job (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dates", type=int, default=50, help="number of dates (default 50)")
    parser.add_argument("--size", type=int, default=2048, help="image edge in pixels (default 2048)")
    parser.add_argument("--workers", type=int, default=2, help="threads of every job (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default benchmarks/out)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three jobs run in turn (default 1)")
    parser.add_argument("--stage", choices=JOBS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.dates < 2:
        parser.error("--dates must be at least 2")
    args.out = args.out.resolve()
    work = args.out / "cube"
    runs = work / "runs"
    if args.stage:
        items = dated_catalog_of(json.loads((work / "catalog" / "items.json").read_text())["items"])
        if args.stage == "xarray":
            result = stage_xarray(items, runs / "xarray.zarr", args.workers)
        else:
            result = stage_run(items, runs / args.stage, args.stage, args.workers)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    layout = SamePlace(args.dates, args.size)
    paths, gen_seconds, written = make_scenes(layout, args.out / "timeseries" / "dates", args.workers)
    print(f"dates: {args.dates} x {args.size}^2 px ({written} generated in {gen_seconds:.0f} s)", flush=True)
    catalog(paths, work / "catalog")
    compile_stacrrn()
    base = [sys.executable, str(Path(__file__).resolve()), "--dates", str(args.dates), "--size", str(args.size)]
    base += ["--workers", str(args.workers), "--out", str(args.out)]
    records = interleaved(lambda job: run_job(job, base, runs), args.repeat)
    cube_mb = args.dates * len(BANDS) * args.size**2 * 2 / 1e6
    print(f"\ncube in memory: {args.dates} dates x {len(BANDS)} bands x {args.size}^2 x 2 B = {cube_mb:.0f} MB")
    jobs = table(records, cube_mb)
    last = {job: recs[-1]["job"] for job, recs in records.items()}
    check = check_pixels(last["cog"], last["zarr"], last["xarray"])
    errors = {job: last[job]["max_gain_rel_error"] for job in JOBS}
    print(
        f"correctness: zarr == cog on dates {check['compared_dates']}: {check['zarr_equals_cog']}; "
        f"xarray == zarr: {check['xarray_equals_zarr']} (max diff {check['xarray_zarr_max_diff_dn']} DN); "
        f"max |g_fit * g_injected - 1|: " + ", ".join(f"{job} {e:.1e}" for job, e in errors.items())
    )
    summary: dict[str, Any] = {
        "dates": args.dates,
        "size": args.size,
        "bands": len(BANDS),
        "neighbours": NEIGHBOURS,
        "workers": args.workers,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "cube_mb": round(cube_mb, 1),
        **{f"{job}_{key}": value for job, values in jobs.items() for key, value in values.items()},
        "xarray_fit_seconds": round(last["xarray"]["fit_seconds"], 2),
        "xarray_apply_seconds": round(last["xarray"]["apply_seconds"], 2),
        **check,
        **{f"{job}_max_gain_rel_error": e for job, e in errors.items()},
        "max_offset_error_dn": last["cog"]["max_offset_error_dn"],
    }
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
