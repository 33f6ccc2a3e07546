"""Benchmark: one STAC job on threads, on a Dask LocalCluster of 1 and 2 workers, and as serverless stages.

One command::

    .venv/bin/python benchmarks/bench_scaling.py [--scenes 16] [--size 2048] [--tiles 8] [--repeat 1] [--out DIR]

What it does and measures:

1. **Scenes**: ``--scenes`` overlapping 4-band uint16 scenes with known gains/offsets from
   ``bench_mosaic``'s generator, catalogued once as STAC items with COG assets
   (``OUT/scaling/catalog``, local files; no S3 server in the timing).
2. **Engines**, each in a fresh interpreter, the same ``stacrrn.run`` job (mosaic mode,
   ``global+local``, scene 0 as reference, from scratch):

   - ``threads``: one thread in this process (the single-process baseline);
   - ``dask-1`` and ``dask-2``: a ``dask.distributed`` LocalCluster of 1 and 2 single-threaded
     worker processes (cluster start-up is timed separately, not in the run time);
   - ``serverless``: the four handlers of :mod:`stacrrn.serverless.handlers` called one after
     the other in one process, as one Lambda each would run them: ``statistics`` for each of
     ``--tiles`` tiles, ``solve``, ``apply`` for each item, ``collection``. Every call parses the
     payload and reads the items' headers again, as separate functions must.

3. **Ratios**: scaling = time(dask-1) / time(dask-2) (2 is perfect on 2 cores; with
   ``--repeat R`` the two run R times in turn and the pair of median scaling is reported,
   with every scaling in ``scalings``: the machine's speed drifts over minutes; each worker
   compresses its COGs on its one thread, see ``STACRRN_COG_THREADS``), with the cores busy
   on average in each Dask run (CPU time of the client and the workers over the run time;
   the scheduler runs in the client); serverless
   overhead = time(serverless) / time(threads) (same total work, one worker); peak RSS of the
   client and of each Dask worker (``ru_maxrss``); the model digest of each engine (they must
   all be equal) and the gain recovery error.

The results are printed as a table and as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    RESULT_PREFIX,
    TAG,
    Layout,
    make_scenes,
    paired,
    peak_rss_mb,
    print_summary,
    run_child,
)

BANDS = ["blue", "green", "red", "nir"]
ENGINES = ("threads", "dask-1", "dask-2", "serverless")


def catalog(paths: list[Path], folder: Path) -> list[dict[str, Any]]:
    """STAC items (one multi-band COG asset each) of the scenes, written once and reused."""
    from stacrrn.pipeline.outputs.catalog import catalog_rasters

    index = folder / "items.json"
    stamp = [p.stat().st_mtime_ns for p in paths]
    if index.exists():
        saved = json.loads(index.read_text())
        if saved["stamp"] == stamp:
            return list(saved["items"])
    shutil.rmtree(folder, ignore_errors=True)
    _, items = catalog_rasters(paths, str(folder), "bench", band_names=BANDS)
    index.write_text(json.dumps({"stamp": stamp, "items": items}))
    return items


def _injected_gains(paths: list[Path]) -> np.ndarray:
    import rasterio

    gains = []
    for p in paths:
        with rasterio.open(p) as src:
            gains.append(json.loads(src.tags()[TAG])["gain"])
    return np.array(gains)


def _job(items: list[dict[str, Any]]) -> dict[str, Any]:
    first = items[0]["id"]
    return {"references": [first], "method": "global+local"}


def _run(items: list[dict[str, Any]], out: Path, workers: Any) -> tuple[float, str, list[list[float]]]:
    import pystac

    from stacrrn.pipeline.run import run

    t0 = time.perf_counter()
    result = run([pystac.Item.from_dict(d) for d in items], str(out), workers=workers, resume=False, **_job(items))
    return time.perf_counter() - t0, result.model.digest(), result.model.global_fit.gains.tolist()


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_engine(engine: str, items: list[dict[str, Any]], out: Path, tiles: int) -> dict[str, Any]:
    """Run the job on one engine; seconds, peak RSS, model digest and gains."""
    shutil.rmtree(out, ignore_errors=True)
    if engine == "threads":
        seconds, digest, gains = _run(items, out, 1)
        return {"seconds": seconds, "digest": digest, "gains": gains, "peak_rss_mb": peak_rss_mb()}
    if engine == "serverless":
        return stage_serverless(items, out, tiles)
    from stacrrn.pipeline.execution.parallel import DaskWorkers, connect

    t0 = time.perf_counter()
    with connect("local", int(engine.split("-")[1])) as cluster:
        assert isinstance(cluster, DaskWorkers)
        startup = time.perf_counter() - t0
        cpu0 = sum(cluster.client.run(_cpu_seconds).values()) + _cpu_seconds()
        seconds, digest, gains = _run(items, out, cluster)
        cpu = sum(cluster.client.run(_cpu_seconds).values()) + _cpu_seconds() - cpu0
        workers_rss = cluster.client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6)
    return {
        "seconds": seconds,
        "cores_busy": cpu / seconds,
        "startup_seconds": startup,
        "digest": digest,
        "gains": gains,
        "peak_rss_mb": peak_rss_mb(),
        "worker_peak_rss_mb": sorted(workers_rss.values()),
    }


def stage_serverless(items: list[dict[str, Any]], out: Path, tiles: int) -> dict[str, Any]:
    """Call the four handlers in sequence as the state machine would; seconds per stage."""
    from stacrrn.core.model import RRNModel
    from stacrrn.serverless import handlers

    payload = {
        "type": "FeatureCollection",
        "features": items,
        "process": {
            "upload_options": {"path_template": str(out)},
            "tasks": {"stacrrn": _job(items) | {"tiles": tiles}},
        },
    }
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    for tile in range(tiles):
        handlers.statistics(payload | {"tile": tile})
    seconds["statistics"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    solved = handlers.solve(payload)
    seconds["solve"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    for item in items:
        handlers.apply(solved | {"item": item["id"]})
    seconds["apply"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    handlers.collection(solved)
    seconds["collection"] = time.perf_counter() - t1
    model = RRNModel.from_json(Path(solved["model"]).read_text())
    return {
        "seconds": time.perf_counter() - t0,
        "stage_seconds": seconds,
        "digest": model.digest(),
        "gains": model.global_fit.gains.tolist(),
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one engine (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int, default=16, help="number of scenes (default 16)")
    parser.add_argument("--size", type=int, default=2048, help="scene edge in pixels (default 2048)")
    parser.add_argument("--tiles", type=int, default=8, help="statistics tiles of the serverless run (default 8)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default benchmarks/out)")
    parser.add_argument("--repeat", type=int, default=1, help="dask-1/dask-2 pairs run in turn; the median is reported")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.out.resolve() / "scaling"
    layout = Layout(args.scenes, args.size)
    scene_dir = args.out.resolve() / f"scenes-{args.scenes}x{args.size}"
    if args.engine:
        items = json.loads((work / "catalog" / "items.json").read_text())["items"]
        result = stage_engine(args.engine, items, work / args.engine, args.tiles)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    paths, gen_seconds, written = make_scenes(layout, scene_dir, 2)
    print(f"scenes: {args.scenes} x {args.size}^2 px ({written} generated in {gen_seconds:.0f} s)", flush=True)
    catalog(paths, work / "catalog")
    base = [sys.executable, str(Path(__file__).resolve()), "--scenes", str(args.scenes), "--size", str(args.size)]
    base += ["--tiles", str(args.tiles), "--out", str(args.out.resolve())]
    results = {}
    for engine in ("threads", "serverless"):
        print(f"running {engine} ...", flush=True)
        results[engine] = run_child([*base, "--engine", engine])
    print(f"running dask-1 and dask-2 ({args.repeat}x) ...", flush=True)
    runs = paired(lambda engine: run_child([*base, "--engine", engine]), "dask-1", "dask-2", args.repeat)
    results["dask-1"], results["dask-2"] = runs["floor"], runs["engine"]
    gains = _injected_gains(paths)
    fitted = np.array(results["threads"]["gains"])
    summary = {
        "scenes": args.scenes,
        "size": args.size,
        "tiles": args.tiles,
        **{f"{e}_seconds": round(r["seconds"], 2) for e, r in results.items()},
        "dask_startup_seconds": [round(results[e]["startup_seconds"], 2) for e in ("dask-1", "dask-2")],
        "dask_cores_busy": [round(results[e]["cores_busy"], 2) for e in ("dask-1", "dask-2")],
        "scaling_dask2_vs_dask1": round(results["dask-1"]["seconds"] / results["dask-2"]["seconds"], 2),
        "scalings": [round(1 / r, 2) for r in runs["ratios"]],
        "dask2_vs_threads": round(results["threads"]["seconds"] / results["dask-2"]["seconds"], 2),
        "serverless_overhead": round(results["serverless"]["seconds"] / results["threads"]["seconds"], 2),
        "serverless_stage_seconds": {k: round(v, 2) for k, v in results["serverless"]["stage_seconds"].items()},
        "peak_rss_mb": {e: round(r["peak_rss_mb"]) for e, r in results.items()},
        "dask2_worker_peak_rss_mb": [round(v) for v in results["dask-2"]["worker_peak_rss_mb"]],
        "same_model": len({r["digest"] for r in results.values()}) == 1,
        "max_gain_rel_error": float(np.max(np.abs(fitted * gains - 1))),
    }
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
