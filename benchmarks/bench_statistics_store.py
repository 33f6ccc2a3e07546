"""Benchmark: the pass-1 statistics cache as JSON (before) and as an ``.npz`` archive (now).

One command::

    .venv/bin/python benchmarks/bench_statistics_store.py [--dates 200 1000] [--repeat 5] [--cache FILE]

For each case it builds :class:`~stacrrn.core.statistics.Statistics` and writes then reads
it through a file in a temporary folder in every format, ``--repeat`` times, the formats in
turn (rotated each round, so a machine whose speed drifts slows them alike):

- ``json``: the former cache, ``{"fingerprint", "statistics": Statistics.to_dict()}``;
- ``npz``: :func:`stacrrn.io.statistics_file.write_statistics` (members stored, the default);
- ``npz-deflate1`` and ``npz-deflate6``: the same archive with DEFLATE level 1 and 6 (6 is
  ``np.savez_compressed``'s), to show what compression would cost and save.

Cases: ``--dates N`` builds a synthetic time series of N dates over one 2048 x 2048 px place,
4 bands, the default 32 x 32 block grid, each date paired with its ``--neighbours`` nearest
dates (default 2): per-pair moments, and block sums that are integer-valued float64 as for
uint16 digital numbers (the values a real run stores; a pair's sums over all pixels of both
dates repeat its dates' own sums, as a real time series' do). ``--cache FILE`` adds the
statistics of a real run (its ``stacrrn-statistics.npz``, or an older ``.json`` cache), e.g.
``benchmarks/bench_timeseries.py --dates 50 --size 512 --out /tmp/ts`` leaves one in
``/tmp/ts/timeseries/normalized/``.

Printed per case and format: size in MB and ratio to JSON; median write and read seconds
with their spread (min-max) over the repeats. The last line is the results as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stacrrn.core.moments import BlockSums, ImageMoments, PairMoments
from stacrrn.core.statistics import Statistics
from stacrrn.io.files import atomic_write_bytes, atomic_write_text
from stacrrn.io.statistics_file import read_statistics, statistics_to_bytes, write_statistics
from stacrrn.types import BlockGrid, Box

FINGERPRINT = "0" * 64
BANDS = 4


def synthetic(dates: int, neighbours: int, size: int = 2048, n_blocks: int = 32, seed: int = 0) -> Statistics:
    """Merged statistics of a ``dates``-date series over one place, nearest-``neighbours`` pairs."""
    rng = np.random.default_rng(seed)
    edge = size // n_blocks
    blocks = BlockGrid(edge, edge, n_blocks, n_blocks)
    footprint = Box(0, 0, size, size)
    stats = Statistics.empty(BANDS, [footprint] * dates, blocks)
    counts = np.full((n_blocks, n_blocks), float(edge * edge))
    centres = (np.arange(size) + 0.5).reshape(n_blocks, edge).sum(axis=1) * edge  # sum of row (col) centres
    places = np.stack([np.repeat(centres[:, None], n_blocks, 1), np.repeat(centres[None, :], n_blocks, 0)])
    sums, squares = [], []
    for i in range(dates):
        mean = rng.uniform(300, 3000, (BANDS, n_blocks, n_blocks))
        sums.append(np.rint(counts * mean))
        squares.append(np.rint(counts * (mean**2 + rng.uniform(1e3, 1e5, mean.shape))))
        stats.images[i] = ImageMoments(size * size, rng.uniform(300, 3000, BANDS), rng.uniform(1e9, 1e11, BANDS))
        stats.image_blocks[i] = BlockSums(blocks.blocks_of(footprint), counts.copy(), sums[i])
    for i in range(dates):
        for j in range(i + 1, min(dates, i + neighbours + 1)):
            moments = [rng.uniform(300, 3000, BANDS) for _ in range(2)] + [rng.uniform(1e9, 1e11, BANDS)] * 3
            stats.pairs[(i, j)] = PairMoments(size * size, *moments)
            planes = np.concatenate([sums[i], sums[j], squares[i], squares[j], places])
            stats.pair_blocks[(i, j)] = BlockSums(blocks.blocks_of(footprint), counts.copy(), planes)
            stats.overlaps[(i, j)] = size * size
    return stats


def from_cache(path: Path) -> Statistics:
    """The statistics a run left (``.npz`` of any fingerprint, or a former ``.json`` cache)."""
    if path.suffix == ".json":
        return Statistics.from_dict(json.loads(path.read_text())["statistics"])
    with np.load(path) as archive:
        fingerprint = str(archive["meta.fingerprint"])
    stats = read_statistics(path, fingerprint)
    if stats is None:
        raise SystemExit(f"{path} is not a statistics archive")
    return stats


def formats() -> dict[str, tuple[str, Callable[[Path, Statistics], None], Callable[[Path], Statistics]]]:
    """Format -> (file suffix, write, read)."""

    def write_json(path: Path, stats: Statistics) -> None:
        atomic_write_text(path, json.dumps({"fingerprint": FINGERPRINT, "statistics": stats.to_dict()}))

    def read_json(path: Path) -> Statistics:
        return Statistics.from_dict(json.loads(path.read_text())["statistics"])

    def write_deflate(level: int) -> Callable[[Path, Statistics], None]:
        return lambda path, stats: atomic_write_bytes(path, statistics_to_bytes(stats, FINGERPRINT, level))

    def read_npz(path: Path) -> Statistics:
        stats = read_statistics(path, FINGERPRINT)
        assert stats is not None
        return stats

    def write_npz(path: Path, stats: Statistics) -> None:
        write_statistics(path, stats, FINGERPRINT)

    return {
        "json": (".json", write_json, read_json),
        "npz": (".npz", write_npz, read_npz),
        "npz-deflate1": (".npz", write_deflate(1), read_npz),
        "npz-deflate6": (".npz", write_deflate(6), read_npz),
    }


def measure(stats: Statistics, repeat: int, folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Sizes and write/read seconds of every format, ``repeat`` interleaved rounds."""
    table = formats()
    times: dict[str, dict[str, list[float]]] = {n: {"write": [], "read": []} for n in names}
    sizes: dict[str, int] = {}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            suffix, write, read = table[name]
            path = folder / f"{name}{suffix}"
            gc.collect()
            t0 = time.perf_counter()
            write(path, stats)
            t1 = time.perf_counter()
            back = read(path)
            t2 = time.perf_counter()
            times[name]["write"].append(t1 - t0)
            times[name]["read"].append(t2 - t1)
            sizes[name] = path.stat().st_size
            if r == 0 and name != "json":  # the archive gives the very statistics back
                check_identical(stats, back)
            del back
            path.unlink()
    return {n: {"bytes": sizes[n], **times[n]} for n in names}


def check_identical(a: Statistics, b: Statistics) -> None:
    """Fail unless ``b`` holds the same arrays as ``a``, bit for bit."""
    x, y = a.to_arrays(), b.to_arrays()
    assert x.keys() == y.keys()
    assert all(x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes() for k in x), "not bit-exact"


def summary(case: str, result: dict[str, dict[str, Any]]) -> list[str]:
    """Table rows of one case."""
    json_bytes = result["json"]["bytes"] if "json" in result else None
    rows = []
    for name, r in result.items():
        ratio = f"{r['bytes'] / json_bytes:6.3f}" if json_bytes else "   -  "
        cells = [f"{case:<14} {name:<13} {r['bytes'] / 1e6:9.1f} MB  {ratio}"]
        for what in ("write", "read"):
            t = r[what]
            cells.append(f"{what} {statistics.median(t):7.3f} s ({min(t):.3f}-{max(t):.3f})")
        rows.append("  ".join(cells))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the cases; print the table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dates", type=int, nargs="*", default=[200, 1000], help="synthetic series (default 200 1000)")
    parser.add_argument("--neighbours", type=int, default=2, help="nearest dates paired (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--cache", type=Path, action="append", default=[], help="a run's statistics file")
    parser.add_argument("--formats", nargs="*", default=list(formats()), choices=list(formats()))
    args = parser.parse_args(argv)
    cases: list[tuple[str, Callable[[], Statistics]]] = [(p.name, lambda p=p: from_cache(p)) for p in args.cache]
    cases += [(f"{n} dates", lambda n=n: synthetic(n, args.neighbours)) for n in args.dates]
    results: dict[str, Any] = {}
    print(f"{'case':<14} {'format':<13} {'size':>12}  /json   median (min-max) of {args.repeat}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case, build in cases:
            stats = build()
            info = {"images": stats.n_images, "pairs": len(stats.pairs)}
            results[case] = info | measure(stats, args.repeat, Path(tmp), args.formats)
            print("\n".join(summary(case, _formats_of(results[case]))), flush=True)
            del stats
    print(json.dumps(results))
    return 0


def _formats_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in result.items() if isinstance(v, dict)}


if __name__ == "__main__":
    sys.exit(main())
