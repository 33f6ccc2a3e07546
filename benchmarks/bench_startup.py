"""Benchmark: start-up of the ``stacrrn`` command, as whole processes, against the interpreter's own.

One command::

    .venv/bin/python benchmarks/bench_startup.py [--rounds 15]

Each round runs every case once, in a fresh process, in interleaved order (so a loaded
machine slows every case alike): the floor ``python -c pass``, ``python -c "import stacrrn"``,
``stacrrn --version``, ``stacrrn --help`` and ``stacrrn <command> --help`` for the two jobs.
It prints per case the median wall time, the spread (min-max) and the ratio to the floor of
the same round (median over rounds), then one JSON line. The target is < 0.3 s for every
help: commands import their pipeline only when they run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CASES: dict[str, list[str]] = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "import stacrrn": [sys.executable, "-c", "import stacrrn"],
    "stacrrn --version": [str(BIN / "stacrrn"), "--version"],
    "stacrrn --help": [str(BIN / "stacrrn"), "--help"],
    "stacrrn run --help": [str(BIN / "stacrrn"), "run", "--help"],
    "stacrrn match --help": [str(BIN / "stacrrn"), "match", "--help"],
}


def timed(command: list[str]) -> float:
    """Wall time of one run of ``command`` (its output discarded; it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Run the interleaved rounds and print the table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for command in CASES.values():  # warm the page cache and bytecode once
        timed(command)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    ratios: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        floor = timed(CASES["python -c pass (floor)"])
        times["python -c pass (floor)"].append(floor)
        for name, command in CASES.items():
            if name.startswith("python -c pass"):
                continue
            t = timed(command)
            times[name].append(t)
            ratios[name].append(t / floor)
    print(f"{'case':<26} {'median s':>9} {'spread s':>15} {'/ floor':>8}")
    summary = {}
    for name in CASES:
        t = times[name]
        ratio = statistics.median(ratios[name]) if ratios[name] else 1.0
        print(f"{name:<26} {statistics.median(t):9.3f} {min(t):7.3f}-{max(t):<7.3f} {ratio:8.1f}")
        summary[name] = {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "ratio": ratio}
    print(json.dumps({"rounds": args.rounds, "cases": summary}))


if __name__ == "__main__":
    main()
