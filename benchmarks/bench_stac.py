"""Benchmark: ``stacrrn.run`` on the core benchmark's mosaic served by loopback S3 + STAC API.

One command::

    .venv/bin/python benchmarks/bench_stac.py [--scenes 16] [--size 4096] [--workers 2] [--out DIR]

1. **Scenes**: the same scenes as ``bench_mosaic.py`` (generated or reused from
   ``OUT/scenes``), published once (not timed) as COGs (one 4-band asset per item, or
   with ``--split-bands`` one asset per band) with STAC items to a moto S3
   server on 127.0.0.1 (hosted by this parent process), and served by ``rustac serve``.
2. **Remote I/O floor** (fresh subprocess): read every input COG once from S3 through
   GDAL ``/vsis3/`` (HTTP range requests, 1024 px windows), write each as a COG with the
   project's writer and upload it to S3 with s3fs; ``--workers`` scenes at a time.
3. **Engine** (fresh subprocess): ``stacrrn.run(Search(stac=...), "s3://.../normalized",
   references=["scene_00"], method="global+local", workers=--workers)``: STAC search,
   odc-stac statistics pass over S3, solve, apply pass over S3, COGs + block maps + items
   uploaded. It reads the inputs twice and writes once, so a ratio near 2 is expected.
4. Peak RSS of each subprocess and the recovered gains' error against the injected ones.

The S3 server runs in this (parent) process, so its CPU time competes with the stages on
the same cores in both; its memory is not in the stages' peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import s3fs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    TAG,
    WINDOW,
    Layout,
    floor_engine_summary,
    make_scenes,
    peak_rss_mb,
    recovery,
)

from stacrrn.io.cog import cog_writer
from stacrrn.io.raster import open_raster
from stacrrn.types import Box

RESULT = "RESULT "
BUCKET = "bench"
COLLECTION = "bench-scenes"


def stage_floor(hrefs: list[str], workers: int, tmp: Path) -> dict[str, Any]:
    """Read each remote scene once and write + upload it once as a COG."""
    from stacrrn.io.storage import configure_cloud

    configure_cloud()
    fs = s3fs.S3FileSystem()
    tmp.mkdir(parents=True, exist_ok=True)

    def copy(href: str) -> None:
        info = open_raster(href.replace("s3://", "/vsis3/"))
        scene, name = href.rsplit("/", 2)[-2:]
        local = tmp / f"{scene}_{name}"
        with rasterio.open(info.path) as src, cog_writer(local, info.grid, src.count, info.dtype, info.nodata) as w:
            for row0 in range(0, info.height, WINDOW):
                for col0 in range(0, info.width, WINDOW):
                    box = Box(row0, col0, min(row0 + WINDOW, info.height), min(col0 + WINDOW, info.width))
                    w.write(box, src.read(window=((row0, box.row1), (col0, box.col1))))
        fs.put_file(str(local), f"{BUCKET}/floor/{scene}/{name}")
        local.unlink()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(copy, hrefs))
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def stage_engine(stac: str, workers: int, injected: list[dict[str, Any]]) -> dict[str, Any]:
    """``stacrrn.run`` from a STAC search to items on S3, from scratch."""
    from stacrrn.io.stac import Search
    from stacrrn.pipeline.run import run

    t0 = time.perf_counter()
    result = run(
        Search(stac=stac, collections=(COLLECTION,)),
        f"s3://{BUCKET}/normalized",
        references=["scene_00"],
        method="global+local",
        workers=workers,
        resume=False,
    )
    seconds = time.perf_counter() - t0
    g = np.array([p["gain"] for p in injected])
    o = np.array([p["offset"] for p in injected])
    fit = result.model.global_fit
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "items": len(result.items),
        **recovery(fit.gains, fit.offsets, g, o),
    }


def child(stage: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run a stage in a fresh interpreter (inheriting the S3 variables)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--payload", json.dumps(payload)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    return dict(json.loads(lines[-1][len(RESULT) :]))


def main() -> int:
    """Run the benchmark (parent) or one stage (child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--split-bands", action="store_true", help="one single-band COG asset per band (Landsat/Sentinel-2 layout)"
    )
    parser.add_argument("--stage", choices=["all", "floor", "engine"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--payload", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    payload = json.loads(args.payload)
    if args.stage == "floor":
        print(RESULT + json.dumps(stage_floor(payload["hrefs"], payload["workers"], Path(payload["tmp"]))))
        return 0
    if args.stage == "engine":
        print(RESULT + json.dumps(stage_engine(payload["stac"], payload["workers"], payload["injected"])))
        return 0

    from stacrrn.pipeline.outputs.catalog import catalog_rasters
    from stacrrn.services import LoopbackS3, RustacAPI

    layout = Layout(args.scenes, args.size)
    out = args.out.resolve()
    paths, gen_seconds, written = make_scenes(layout, out / "scenes", args.workers)
    print(f"scenes: {args.scenes} x {args.size}^2 x 4 uint16 ({written} generated in {gen_seconds:.0f} s)", flush=True)
    injected = []
    for p in paths:
        with rasterio.open(p) as src:
            injected.append(json.loads(src.tags()[TAG]))
    with LoopbackS3() as s3:
        s3.create_bucket(BUCKET)
        t0 = time.perf_counter()
        coll, items = catalog_rasters(
            paths,
            f"s3://{BUCKET}/scenes",
            COLLECTION,
            band_names=["b1", "b2", "b3", "b4"],
            split_bands=args.split_bands,
        )
        print(f"published to S3 + STAC items in {time.perf_counter() - t0:.0f} s (not timed below)", flush=True)
        hrefs = [a["href"] for it in items for a in it["assets"].values()]
        input_bytes = sum(s3fs.S3FileSystem().size(h[5:]) for h in hrefs)
        with RustacAPI(coll, items) as api:
            print("running the remote I/O floor ...", flush=True)
            floor = child("floor", {"hrefs": hrefs, "workers": args.workers, "tmp": str(out / "floor-stac")})
            print("running stacrrn.run ...", flush=True)
            engine = child("engine", {"stac": api.url, "workers": args.workers, "injected": injected})
    summary = {
        "layout": "one single-band asset per band" if args.split_bands else "one 4-band asset per item",
        "scenes": args.scenes,
        "size": args.size,
        "workers": args.workers,
        "input_gb_in_s3": round(input_bytes / 1e9, 3),
        **floor_engine_summary(floor, engine),
    }
    for k, v in summary.items():
        print(f"{k:<22} {v}")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
