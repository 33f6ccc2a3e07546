"""Benchmark: the small job (4 tiles of ~1k²), whole processes from launch to exit, against the I/O floor.

One command::

    .venv/bin/python benchmarks/bench_small.py [--size 1024] [--repeat 5] [--workers 2] [--data DIR] [--peers]

What it does and measures:

1. **Tiles.** By default 4 scenes of ``--size`` pixels square (4-band uint16, 2 x 2 grid,
   ~10 % overlap, known gains and offsets) from ``bench_mosaic``'s generator, in
   ``OUT/scenes`` (reused when current). ``--data DIR`` uses real tiles instead: the files of
   ``DIR`` matching ``--pattern`` (default ``*.tif``), sorted by name; the first is the
   reference unless ``--reference`` names another.
2. **Cases**, each a fresh process timed from launch to exit (interpreter start and imports
   included, as a user waits for them):

   - ``floor``: this script's floor stage, ``bench_mosaic.stage_floor``: read every input
     pixel once and write every output once as a COG with stacrrn's own writer
     (``stacrrn.io.cog.cog_writer``), ``--workers`` threads. The cheapest process that does
     the job's I/O.
   - ``stacrrn global+local``: ``stacrrn match TILES --out OUT/runs/stacrrn-global+local
     --reference REF --method global+local --workers W --no-resume`` (the installed command;
     its output folder deleted first).
   - ``stacrrn global``: the same with ``--method global``.
   - with ``--peers``: ``bench_peers``' jobs of the peer tools, installed by ``bench_peers``'
     code when missing (spectralmatch ``global`` and ``global+local``, OTB ``mosaic``); a peer
     that cannot be installed is listed as unavailable and skipped.

3. **Rounds.** One untimed warm-up round (``--warmup``), then ``--repeat`` rounds, each
   running every case once in the order above, so a drifting machine slows every case of a
   round alike. Per case: median seconds and spread (min-max), the ratio to the same round's
   floor (median and spread of the per-round ratios) and the peak RSS of the process tree
   (``bench_mosaic.run_measured``: the larger of the job's ``ru_maxrss`` and its tree's total
   RSS sampled every 50 ms; the job is started from a lean launcher process, so it does not
   inherit this script's peak RSS).

The results are printed as a table, then as one ``BENCH_RESULT {json}`` line. Logs of the
last round in ``OUT/runs/<case>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    RESULT_PREFIX,
    Layout,
    compile_stacrrn,
    make_scenes,
    run_measured,
    stage_floor,
)

if TYPE_CHECKING:  # imported when used: the floor process should not import what it does not use
    from bench_peers import Peer

STACRRN = Path(sys.executable).parent / "stacrrn"
"""The installed ``stacrrn`` command beside this interpreter."""
PEER_JOBS = [("spectralmatch", "global"), ("spectralmatch", "global+local"), ("otb", "mosaic")]


def input_paths(args: argparse.Namespace) -> list[Path]:
    """The tiles: real files of ``--data`` or the generator's scenes (not generated here)."""
    if args.data is not None:
        return sorted(p for p in args.data.glob(args.pattern) if p.is_file())
    layout = Layout(args.scenes, args.size)
    return [layout.path(args.out / "scenes", k) for k in range(args.scenes)]


def _fresh(out: Path, cmd: list[str]) -> list[str]:
    """Delete ``out``; return ``cmd``."""
    shutil.rmtree(out, ignore_errors=True)
    return cmd


def cases(args: argparse.Namespace, paths: list[Path], peers: dict[str, Peer]) -> dict[str, Callable[[], list[str]]]:
    """Name -> what clears the case's outputs and gives its command line, in the order a round runs them."""
    from bench_peers import job_command

    runs = args.out / "runs"
    floor = [sys.executable, str(Path(__file__).resolve()), "--stage", "floor", "--out", str(args.out)]
    floor += ["--workers", str(args.workers), "--scenes", str(args.scenes), "--size", str(args.size)]
    if args.data is not None:
        floor += ["--data", str(args.data), "--pattern", args.pattern]
    found: dict[str, Callable[[], list[str]]] = {"floor": partial(_fresh, runs / "floor", floor)}
    for method in ("global+local", "global"):
        out = runs / f"stacrrn-{method}"
        cmd = [str(STACRRN), "match", *map(str, paths), "--out", str(out), "--reference", args.reference]
        cmd += ["--method", method, "--workers", str(args.workers), "--no-resume"]
        found[f"stacrrn {method}"] = partial(_fresh, out, cmd)
    for tool, job in PEER_JOBS:
        if tool in peers and peers[tool].exe is not None:  # bench_peers' command clears its own folder
            found[f"{tool} {job}"] = partial(job_command, tool, job, args, paths, peers)
    return found


def run_case(name: str, command: Callable[[], list[str]], args: argparse.Namespace) -> dict[str, Any]:
    """Run one case once from fresh outputs; ``bench_mosaic.run_measured``'s record."""
    from bench_peers import OTB_RAM_MB

    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(args.workers), "OTB_MAX_RAM_HINT": str(OTB_RAM_MB)}
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    rec = run_measured(command(), args.out / "runs" / f"{name.replace(' ', '-')}.log", env)
    if rec["exit"] != 0:
        raise RuntimeError(f"{name} failed (exit {rec['exit']}): {rec['log']}")
    return rec


def spread(values: list[float], digits: int = 2) -> dict[str, Any]:
    """Median, min, max and every value, rounded."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "all": [round(v, digits) for v in values],
    }


def describe(paths: list[Path]) -> dict[str, Any]:
    """Shape, type and size of the tiles."""
    import numpy as np
    import rasterio

    shapes = []
    for p in paths:
        with rasterio.open(p) as src:
            shapes.append((src.width, src.height, src.count, src.dtypes[0]))
    return {
        "tiles": len(paths),
        "tile_shapes": sorted({f"{w}x{h}x{c} {t}" for w, h, c, t in shapes}),
        "input_mb_uncompressed": round(sum(w * h * c * np.dtype(t).itemsize for w, h, c, t in shapes) / 1e6, 1),
        "input_mb_on_disk": round(sum(p.stat().st_size for p in paths) / 1e6, 1),
    }


def run_rounds(
    commands: dict[str, Callable[[], list[str]]], args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """``--warmup`` untimed rounds, then ``--repeat`` timed ones, each running every case once in turn."""
    compile_stacrrn()
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for r in range(args.warmup + args.repeat):
        timed = r >= args.warmup
        print(f"round {r + 1 - args.warmup}/{args.repeat} ..." if timed else "warm-up round ...", flush=True)
        for name, command in commands.items():
            rec = run_case(name, command, args)
            if name == "floor":  # its own RESULT_PREFIX line: the read + write, without start-up
                rec["in_process_seconds"] = json.loads(rec["log"].split(RESULT_PREFIX)[-1])["seconds"]
            if timed:
                records[name].append(rec)
    return records


def table(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Print and return per case: seconds, ratios to the same round's floor and peak RSS."""
    floors = [rec["seconds"] for rec in records["floor"]]
    results: dict[str, Any] = {}
    print(f"\n{'case':<28}{'median s':>9}{'min-max s':>14}{'/ floor':>9}{'min-max':>12}{'peak RSS MB':>13}")
    for name, recs in records.items():
        seconds = [rec["seconds"] for rec in recs]
        ratios = [t / f for t, f in zip(seconds, floors, strict=True)]
        rss = [rec["peak_rss_mb"] for rec in recs]
        results[name] = {"seconds": spread(seconds), "ratio_floor": spread(ratios), "peak_rss_mb": spread(rss, 1)}
        s, q = results[name]["seconds"], results[name]["ratio_floor"]
        cells = (
            f"{s['median']:>9.2f}{s['min']:>8.2f}-{s['max']:<5.2f}{q['median']:>9.2f}{q['min']:>6.2f}-{q['max']:<5.2f}"
        )
        print(f"{name:<28}{cells}{statistics.median(rss):>13.0f}")
    inside = spread([rec["in_process_seconds"] for rec in records["floor"]])
    results["floor"]["in_process_seconds"] = inside
    print(f"(the floor's read + write alone, inside its process: median {inside['median']:.2f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run the floor (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1024, help="generated tile edge in pixels (default 1024)")
    parser.add_argument("--scenes", type=int, default=4, help="generated tiles (default 4, a 2 x 2 grid)")
    parser.add_argument("--data", type=Path, help="folder of real tiles instead of generated ones")
    parser.add_argument("--pattern", default="*.tif", help="file pattern in --data (default *.tif)")
    parser.add_argument("--reference", help="reference tile name (default: the first tile)")
    parser.add_argument("--workers", type=int, default=2, help="threads of every case (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--peers", action="store_true", help="also run the peer tools of bench_peers")
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_OUT / "peers" / "peers-venv", help="spectralmatch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "small", help="working folder")
    parser.add_argument("--stage", choices=["floor"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.out = args.out.resolve()
    paths = input_paths(args)
    if args.stage == "floor":
        print(RESULT_PREFIX + json.dumps(stage_floor(paths, args.out / "runs" / "floor", args.workers)), flush=True)
        return 0

    if args.data is None:
        layout = Layout(args.scenes, args.size)
        print(f"tiles: {args.scenes} x {args.size}^2 px, mosaic {layout.mosaic}^2 px -> {args.out / 'scenes'}")
        paths, gen_seconds, written = make_scenes(layout, args.out / "scenes", args.workers)
        print(f"generated {written} tile(s) in {gen_seconds:.1f} s, reused {args.scenes - written}", flush=True)
    elif len(paths) < 2:
        parser.error(f"--data {args.data} holds {len(paths)} file(s) matching {args.pattern}; at least 2 are needed")
    args.scenes = len(paths)  # bench_peers' job_command reads it
    args.reference = args.reference or paths[0].stem
    info = describe(paths)
    print(f"inputs: {info}", flush=True)
    peers: dict[str, Peer] = {}
    if args.peers:
        from bench_peers import ensure_otb, ensure_spectralmatch

        peers = {"otb": ensure_otb(), "spectralmatch": ensure_spectralmatch(args.peers_venv.resolve())}
        for p in peers.values():
            print(f"{p.name}: " + (f"version {p.version}" if p.exe else f"UNAVAILABLE ({p.note})"), flush=True)
    records = run_rounds(cases(args, paths, peers), args)
    results = table(records)
    summary: dict[str, Any] = {
        "data": str(args.data) if args.data else f"generated {args.scenes} x {args.size}^2 x 4 uint16",
        **info,
        "reference": args.reference,
        "workers": args.workers,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "cases": results,
    }
    if peers:
        summary["peers"] = {
            k: {"version": p.version, "available": p.exe is not None, "note": p.note} for k, p in peers.items()
        }
    print()
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
