"""Benchmark: many small scenes (16 to 1024 of 256²): the cost per scene as their number grows.

One command::

    .venv/bin/python benchmarks/bench_many.py [--scenes 16,64,256] [--size 256] [--workers 1,2] [--repeat 1]

What it does and measures, for each N of ``--scenes``:

1. **Scenes** from ``bench_mosaic``'s generator: N 4-band uint16 scenes of ``--size`` pixels
   square on a square-ish grid (``ceil(sqrt(N))`` per row), overlapping their neighbours by
   ~10 % of the edge, every scene but scene 0 with a known per-band gain and offset; in
   ``OUT/scenes-N``, generated once and reused while current.
2. **I/O floor** (fresh process, ``bench_mosaic.stage_floor``): read every input pixel once
   and write every output once as a COG with ``stacrrn.io.cog.cog_writer``, W threads.
3. **Match** (fresh process, ``bench_mosaic.stage_engine``): ``stacrrn.match(paths, OUT/nN/
   match-wW, references=[scene 0], method="global+local", workers=W)`` from scratch, for each
   W of ``--workers`` (the pipeline's modules imported first, untimed). A progress callback
   notes the wall and CPU time (``time.process_time``: every thread of the process) at each
   pass's first and last report, which splits the call into: plan (``make_plan``: opening the
   N files, footprints, pairs, chunks), **pass 1** (statistics: every chunk read and reduced),
   solve, overlap metrics, block maps (up to pass 2), pass 2 (apply) and the tail (model
   JSON). The figure of merit is **pass-1 CPU seconds per scene**, and its ratio to the
   smallest N's: at most 1.25 means no per-scene cost grows with N. Also the recovered
   gain/offset error of the global fit.
4. **Mosaic** (fresh process, ``bench_mosaic.stage_mosaic``): ``stacrrn.mosaic(mosaic_sources(
   normalized outputs), OUT/nN/mosaic, feather=32)`` (coarse footprints and seamlines, then the
   chunked feathered blend) at the largest W, with its seam jump.
5. **Peak RSS** of every process (its own ``ru_maxrss``; processes are started through
   ``bench_mosaic.LAUNCHER`` so they do not inherit this script's peak). Target: below 2 GB.

``--repeat R`` runs each floor/match pair R times in turn and keeps the pair of median ratio
(``bench_mosaic.paired``), and the mosaic R times (median). Seconds are those of the work
inside each process; the process times (start-up and imports included) are in the JSON.
A table, then one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    RESULT_PREFIX,
    Layout,
    compile_stacrrn,
    make_scenes,
    paired,
    run_measured,
    stage_engine,
    stage_floor,
    stage_mosaic,
)

FLAT = 1.25
"""Target: pass-1 CPU per scene within this factor of the smallest N's."""
RSS_TARGET_MB = 2000.0


class StageClock:
    """A progress callback keeping wall and process CPU time at each stage's first and last report."""

    def __init__(self) -> None:
        self.start = (time.perf_counter(), time.process_time())
        self.stages: dict[str, list[float]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Note the time of this report of ``stage``."""
        now = [time.perf_counter(), time.process_time()]
        self.stages.setdefault(stage, now * 2)[2:] = now

    def segments(self, seconds: float) -> dict[str, dict[str, float]]:
        """Wall and CPU seconds of each stage, of the gaps between them and of the tail.

        The gap before pass 1 is the plan, the one after it the solve, the one after the overlap
        metrics the block maps (and pass 2's set-up). ``seconds`` is the wall
        time of the whole call (begun at this clock's creation); the tail's CPU time runs to now.
        """
        out: dict[str, dict[str, float]] = {}
        previous, last = "", list(self.start)
        for stage, (w0, c0, w1, c1) in self.stages.items():
            gap = {"": "plan", "statistics": "solve", "overlaps": "block maps"}.get(previous, f"after {previous}")
            out[gap] = {"wall": w0 - last[0], "cpu": c0 - last[1]}
            out[stage] = {"wall": w1 - w0, "cpu": c1 - c0}
            previous, last = stage, [w1, c1]
        out["tail"] = {"wall": self.start[0] + seconds - last[0], "cpu": time.process_time() - last[1]}
        return {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in out.items()}


def scene_paths(out: Path, scenes: int, size: int) -> list[Path]:
    """The N scenes' files (``OUT/scenes-N``)."""
    layout = Layout(scenes, size)
    return [layout.path(out / f"scenes-{scenes}", k) for k in range(scenes)]


def child(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """One stage in this (fresh) process."""
    paths = scene_paths(args.out, args.n, args.size)
    work = args.out / f"n{args.n}"
    w = args.workers[0]
    if stage == "floor":
        return stage_floor(paths, work / f"floor-w{w}", w)
    if stage == "mosaic":
        return stage_mosaic([work / f"match-w{w}" / p.name for p in paths], work / "mosaic", w)
    shutil.rmtree(work / f"match-w{w}", ignore_errors=True)
    import stacrrn.pipeline.match  # noqa: F401  (imported before the clock: not part of the plan's time)

    clock = StageClock()
    result = stage_engine(paths, work / f"match-w{w}", w, progress=clock)
    segments = clock.segments(result["seconds"])
    pass1 = segments.get("statistics", {"wall": float("nan"), "cpu": float("nan")})
    return {**result, "stages": segments, "pass1_cpu_s": pass1["cpu"], "pass1_wall_s": pass1["wall"]}


def run_stage(stage: str, n: int, w: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a fresh process through the launcher; its result with process seconds added."""
    from bench_peers import stacrrn_detail

    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--n", str(n), "--workers", str(w)]
    cmd += ["--size", str(args.size), "--out", str(args.out)]
    log = args.out / f"n{n}" / f"{stage}-w{w}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rec = run_measured(cmd, log)
    if rec["exit"] != 0:
        raise RuntimeError(f"{stage} of {n} scenes, {w} workers failed (exit {rec['exit']}): {rec['log']}")
    result = stacrrn_detail(log)
    result["process_seconds"] = rec["seconds"]
    result["peak_rss_mb"] = max(result["peak_rss_mb"], rec["peak_rss_mb"])
    return result


def sweep_one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Scenes, floor/match pairs at each worker count and the mosaic, for ``n`` scenes."""
    layout = Layout(n, args.size)
    t0 = time.perf_counter()
    paths, gen_seconds, written = make_scenes(layout, args.out / f"scenes-{n}", max(args.workers))
    print(
        f"\n{n} scenes ({layout.side}x{layout.side} grid, mosaic {layout.mosaic}^2 px): generated {written} "
        f"in {gen_seconds:.1f} s, reused {n - written}",
        flush=True,
    )
    record: dict[str, Any] = {"scenes": n, "grid": f"{layout.side}x{layout.side}", "mosaic_px": layout.mosaic}
    record["input_mb_on_disk"] = round(sum(p.stat().st_size for p in paths) / 1e6, 1)
    for w in args.workers:
        print(f"  floor and match, {w} worker(s), {args.repeat}x ...", flush=True)
        runs = paired(lambda stage, w=w: run_stage(stage, n, w, args), "floor", "match", args.repeat)
        floor, match = runs["floor"], runs["engine"]
        record[f"w{w}"] = {
            "floor_seconds": round(floor["seconds"], 3),
            "match_seconds": round(match["seconds"], 3),
            "ratio_match_floor": round(match["seconds"] / floor["seconds"], 2),
            "ratios_match_floor": runs["ratios"],
            "floor_process_seconds": round(floor["process_seconds"], 3),
            "match_process_seconds": round(match["process_seconds"], 3),
            "pass1_cpu_s": round(match["pass1_cpu_s"], 3),
            "pass1_cpu_s_per_scene": round(match["pass1_cpu_s"] / n, 5),
            "pass1_wall_s": round(match["pass1_wall_s"], 3),
            "plan_cpu_s_per_scene": round(match["stages"].get("plan", {"cpu": 0.0})["cpu"] / n, 5),
            "stages": match["stages"],
            "match_peak_rss_mb": round(match["peak_rss_mb"], 1),
            "floor_peak_rss_mb": round(floor["peak_rss_mb"], 1),
            "max_gain_rel_error": match["max_gain_rel_error"],
            "max_offset_error_dn": match["max_offset_error_dn"],
            "warnings": match["warnings"],
        }
    w = max(args.workers)
    print(f"  mosaic, {w} worker(s), {args.repeat}x ...", flush=True)
    mosaics = sorted((run_stage("mosaic", n, w, args) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    mosaic = mosaics[(len(mosaics) - 1) // 2]
    record["mosaic"] = {
        "workers": w,
        "seconds": round(mosaic["seconds"], 3),
        "all_seconds": [round(r["seconds"], 3) for r in mosaics],
        "process_seconds": round(mosaic["process_seconds"], 3),
        "peak_rss_mb": round(mosaic["peak_rss_mb"], 1),
        "seam_jump": mosaic["seam_jump"],
    }
    record["sweep_seconds"] = round(time.perf_counter() - t0, 1)
    return record


def table(records: list[dict[str, Any]], workers: list[int]) -> list[str]:
    """One row per N and worker count; the per-scene ratio is to the first N at the same workers."""
    base = records[0]["scenes"]
    head = f"{'N':>5}{'W':>3}{'pass-1 CPU':>12}{f'/ N={base}':>9}{'plan CPU':>10}{'pass 1':>8}{'match':>8}"
    head += f"{'floor':>8}{'m/floor':>8}{'RSS match':>10}{'mosaic':>8}{'RSS mosaic':>11}{'gain err':>10}"
    units = f"{'':>8}{'s/scene':>12}{'':>9}{'s/scene':>10}{'wall s':>8}{'s':>8}{'s':>8}{'':>8}{'MB':>10}"
    lines = [head, units + f"{'s':>8}{'MB':>11}"]
    for rec in records:
        for w in workers:
            r = rec[f"w{w}"]
            ref = records[0][f"w{w}"]["pass1_cpu_s_per_scene"]
            r["pass1_cpu_ratio_to_first"] = round(r["pass1_cpu_s_per_scene"] / ref, 2)
            cells = f"{rec['scenes']:>5}{w:>3}{r['pass1_cpu_s_per_scene']:>12.4f}{r['pass1_cpu_ratio_to_first']:>9.2f}"
            cells += f"{r['plan_cpu_s_per_scene']:>10.4f}{r['pass1_wall_s']:>8.2f}{r['match_seconds']:>8.2f}"
            cells += f"{r['floor_seconds']:>8.2f}{r['ratio_match_floor']:>8.2f}{r['match_peak_rss_mb']:>10.0f}"
            if w == rec["mosaic"]["workers"]:
                cells += f"{rec['mosaic']['seconds']:>8.2f}{rec['mosaic']['peak_rss_mb']:>11.0f}"
            else:
                cells += f"{'':>8}{'':>11}"
            lines.append(cells + f"{r['max_gain_rel_error']:>10.1e}")
    return lines


def verdicts(records: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    """The two targets: pass-1 CPU per scene at most 25 % above the smallest N's, peak RSS below 2 GB.

    A per-scene cost that falls with N (fixed costs spread over more scenes) meets the first.
    """
    ratios = [rec[f"w{w}"]["pass1_cpu_ratio_to_first"] for rec in records for w in workers]
    rss = [rec[f"w{w}"]["match_peak_rss_mb"] for rec in records for w in workers]
    rss += [rec["mosaic"]["peak_rss_mb"] for rec in records]
    return {
        "pass1_cpu_per_scene_max_ratio": max(ratios),
        "pass1_cpu_per_scene_min_ratio": min(ratios),
        "pass1_cpu_flat_within_25pct": max(ratios) <= FLAT,
        "max_peak_rss_mb": max(rss),
        "peak_rss_below_2gb": max(rss) < RSS_TARGET_MB,
    }


def int_list(text: str) -> list[int]:
    """``"16,64,256"`` -> ``[16, 64, 256]``."""
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one stage (child) or the whole sweep (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int_list, default=[16, 64, 256], help="scene counts (default 16,64,256)")
    parser.add_argument("--size", type=int, default=256, help="scene edge in pixels (default 256)")
    parser.add_argument("--workers", type=int_list, default=[1, 2], help="worker counts of the match (default 1,2)")
    parser.add_argument("--repeat", type=int, default=1, help="floor/match pairs and mosaics per N (median kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "many", help="working folder")
    parser.add_argument("--stage", choices=["floor", "match", "mosaic"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    if args.stage:
        print(RESULT_PREFIX + json.dumps(child(args.stage, args)), flush=True)
        return 0
    if min(args.scenes) < 2 or args.repeat < 1 or not args.workers:
        parser.error("--scenes must all be at least 2, --repeat at least 1, --workers not empty")
    args.scenes, args.workers = sorted(set(args.scenes)), sorted(set(args.workers))
    compile_stacrrn()
    t0 = time.perf_counter()
    records = [sweep_one(n, args) for n in args.scenes]
    print()
    print("\n".join(table(records, args.workers)))
    summary: dict[str, Any] = {
        "size": args.size,
        "bands": 4,
        "overlap_px": Layout(2, args.size).overlap,
        "workers": args.workers,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        **verdicts(records, args.workers),
        "seconds": round(time.perf_counter() - t0, 1),
        "runs": records,
    }
    print(
        f"\npass-1 CPU per scene: max ratio to N={records[0]['scenes']} {summary['pass1_cpu_per_scene_max_ratio']:.2f} "
        f"(target <= {FLAT}); peak RSS max {summary['max_peak_rss_mb']:.0f} MB (target < {RSS_TARGET_MB:.0f}); "
        f"{summary['seconds']:.0f} s in all"
    )
    for rec in records:
        for w in args.workers:
            for warning in rec[f"w{w}"]["warnings"]:
                print(f"warning ({rec['scenes']} scenes, {w} workers): {warning}")
    print()
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
