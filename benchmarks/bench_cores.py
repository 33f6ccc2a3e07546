"""Benchmark: worker scaling with as many cores as workers, for the engine and for the I/O floor.

One command::

    .venv/bin/python benchmarks/bench_cores.py [--scenes 16] [--size 4096] [--workers 2] [--repeat 3] [--out DIR]

``stacrrn --workers 1`` is not a one-core job: GDAL compresses every COG on all the CPUs
(``NUM_THREADS=ALL_CPUS``), in the I/O floor as in the engine. Comparing one worker with two
on the same cores so measures how much of the second core the first worker left idle, not
how the engine scales. This benchmark confines each process to as many CPUs as it has
workers (``sched_setaffinity``, which every thread of the process, GDAL's included,
inherits):

1. **Scenes** from ``bench_mosaic``'s generator (``--scenes`` of ``--size`` pixels square,
   known gains and offsets), in ``OUT/scenes``, generated once and reused.
2. **Rounds**, ``--repeat`` of them, each running four fresh processes back to back: the I/O
   floor on 1 CPU with 1 worker, the floor on ``W`` CPUs with ``W`` workers, the engine
   (``stacrrn.match``, ``global+local``, scene 0 as reference) on 1 CPU with 1 worker, and the
   engine on ``W`` CPUs with ``W`` workers (``bench_mosaic``'s ``floor`` and ``engine`` stages).
3. **Ratios** of each round: the engine's scaling (its time on 1 CPU over its time on ``W``),
   the floor's scaling, and the engine's scaling over the floor's (1.0: the engine uses the
   extra cores as well as reading and writing COGs can), and the engine/floor ratio on 1 and
   on ``W`` CPUs: each figure's median, minimum, maximum and value in every round
   (``bench_small.spread``).

The results are printed as a table and as one ``BENCH_RESULT {json}`` line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import DEFAULT_OUT, RESULT_PREFIX, Layout, compile_stacrrn, make_scenes, run_child
from bench_small import spread

SCRIPT = Path(__file__).resolve().parent / "bench_mosaic.py"


def run_confined(stage: str, workers: int, args: argparse.Namespace) -> float:
    """Seconds of ``bench_mosaic``'s ``stage`` with ``workers`` workers, confined to as many CPUs."""
    cmd = [sys.executable, str(SCRIPT), "--stage", stage, "--scenes", str(args.scenes), "--size", str(args.size)]
    cmd += ["--workers", str(workers), "--out", str(args.out)]
    return float(run_child(cmd, cpus=set(range(workers)))["seconds"])


def one_round(args: argparse.Namespace) -> dict[str, float]:
    """Floor and engine on 1 CPU and on ``W``, back to back; their seconds and ratios."""
    w = args.workers
    t = {
        "floor_1": run_confined("floor", 1, args),
        f"floor_{w}": run_confined("floor", w, args),
        "engine_1": run_confined("engine", 1, args),
        f"engine_{w}": run_confined("engine", w, args),
    }
    engine, floor = t["engine_1"] / t[f"engine_{w}"], t["floor_1"] / t[f"floor_{w}"]
    ratios = {
        "engine_scaling": engine,
        "floor_scaling": floor,
        "engine_over_floor_scaling": engine / floor,
        "engine_floor_1": t["engine_1"] / t["floor_1"],
        f"engine_floor_{w}": t[f"engine_{w}"] / t[f"floor_{w}"],
    }
    return {k: round(v, 3) for k, v in (t | ratios).items()}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the rounds, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int, default=16, help="number of scenes (default 16)")
    parser.add_argument("--size", type=int, default=4096, help="scene edge in pixels (default 4096)")
    parser.add_argument("--workers", type=int, default=2, help="workers (and CPUs) of the parallel runs (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3); the median is reported")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default benchmarks/out)")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    cpus = len(os.sched_getaffinity(0))
    if args.scenes < 2 or args.repeat < 1 or not 2 <= args.workers <= cpus:
        parser.error(f"--scenes must be at least 2, --repeat at least 1, --workers between 2 and {cpus} (the CPUs)")
    compile_stacrrn()
    layout = Layout(args.scenes, args.size)
    _, gen_seconds, written = make_scenes(layout, args.out / "scenes", args.workers)
    print(f"scenes: {args.scenes} x {args.size}^2, generated {written} in {gen_seconds:.1f} s", flush=True)
    rounds = []
    for k in range(args.repeat):
        rounds.append(one_round(args))
        print(f"round {k + 1}: {json.dumps(rounds[-1])}", flush=True)
    figures = {key: spread([r[key] for r in rounds], digits=3) for key in rounds[0]}
    print()
    w = args.workers
    print(f"{'':<28}{'median':>9}{'spread':>18}")
    labels = [
        ("floor_1", "floor, 1 CPU (s)"),
        (f"floor_{w}", f"floor, {w} CPUs (s)"),
        ("engine_1", "engine, 1 CPU (s)"),
        (f"engine_{w}", f"engine, {w} CPUs (s)"),
        ("floor_scaling", "floor scaling"),
        ("engine_scaling", "engine scaling"),
        ("engine_over_floor_scaling", "engine / floor scaling"),
        ("engine_floor_1", "engine / floor, 1 CPU"),
        (f"engine_floor_{w}", f"engine / floor, {w} CPUs"),
    ]
    for key, label in labels:
        f = figures[key]
        low_high = f"{f['min']:.3f}-{f['max']:.3f}"
        print(f"{label:<28}{f['median']:>9.3f}{low_high:>18}")
    summary = {"scenes": args.scenes, "size": args.size, "workers": w, "figures": figures}
    print()
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
