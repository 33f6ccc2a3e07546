"""Benchmark: stacrrn on a large synthetic mosaic, against the I/O floor of the same data.

One command::

    .venv/bin/python benchmarks/bench_mosaic.py [--scenes 16] [--size 4096] [--workers 2] [--out DIR]

What it does and measures:

1. **Scenes.** Writes ``--scenes`` overlapping 4-band uint16 GeoTIFFs of ``--size`` pixels
   square (EPSG:32633, 10 m pixels, nodata 0, 512 px tiles, ZSTD) on a square grid of
   scenes (4 x 4 for 16) overlapping by ~10 % of their edge, into ``OUT/scenes``. The
   ground truth is one continuous mosaic: :func:`stacrrn.samples.landscape` synthesized on
   a small canvas, bilinearly upsampled to the mosaic size and modulated by a periodic
   fine texture, so overlapping scenes see exactly the same truth. Each scene except
   scene 0 then gets a known per-band gain (0.8..1.2) and offset (-150..150). Pixels are
   generated strip by strip, so memory stays bounded whatever the size. Scenes that
   already exist with the same parameters (stored in a GeoTIFF tag) are reused.
2. **I/O floor.** In a fresh subprocess, every scene is read once (1024 x 1024 windows)
   and written once as a COG with the project's own writer
   (:func:`stacrrn.io.cog.cog_writer`), scenes spread over ``--workers`` threads. No
   arithmetic: this is the cheapest possible "read everything, write every output" job.
3. **Engine.** In another fresh subprocess, ``stacrrn.match(..., method="global+local",
   references=[scene 0], workers=--workers)`` with fresh outputs and statistics
   (``OUT/normalized`` is deleted first). The engine reads every input twice (statistics
   pass and apply pass) and writes every output once, so a ratio near 2 is expected.
4. **Peak RSS.** Each subprocess reports its own ``ru_maxrss`` (interpreter, imports and
   GDAL's block cache included).
5. **Correctness.** ``max |gain_fitted * gain_injected - 1|`` and
   ``max |gain_fitted * offset_injected + offset_fitted|`` (DN) over scenes and bands:
   the global fit must undo the injected distortions.
6. **Mosaic** of the normalized scenes, against its own I/O floor (both in fresh
   subprocesses): the floor reads every normalized pixel once on the mosaic grid (chunk by
   chunk, the same reader) and writes the mosaic COG once, taking the first valid image per
   pixel; the engine is ``stacrrn.mosaic`` (seamlines from a coarse read, then feathered
   blending over 32 px), with the seam jump it measures.

Wall-clock times include compression and COG overview building in both stages. Inputs
are usually in the page cache for both stages (they were just written or read).
The results are printed as a table and as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window

from stacrrn.io.cog import cog_writer
from stacrrn.io.raster import open_raster
from stacrrn.types import Box

F32 = NDArray[np.float32]

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
GENERATOR_VERSION = 1
"""Bump when the synthetic content changes, so old scenes are regenerated."""
TAG = "STACRRN_BENCH"
"""GeoTIFF tag holding a scene's generation parameters (JSON)."""
BASE = 1024
"""Edge of the canvas :func:`landscape` is synthesized on before upsampling."""
TEXTURE = 512
"""Period (pixels) of the fine multiplicative texture."""
STRIP = 1024
"""Rows of a scene generated at once."""
WINDOW = 1024
"""Window edge of the I/O floor's reads."""
SEED = 0
PIXEL = 10.0
ORIGIN = (500000.0, 4500000.0)
RESULT_PREFIX = "BENCH_RESULT "
LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds, code = time.perf_counter() - t0, os.waitstatus_to_exitcode(status)
if sys.argv[1]:
    with open(sys.argv[1], "w") as fh:
        json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss, "exit": code}, fh)
sys.exit(code)
"""
"""``python -c LAUNCHER RESULT_JSON|'' CMD...``: run a job from a lean process and report its rusage.

A process started by a large one inherits its peak RSS: on Linux ``exec`` folds the peak of the
address space it replaces (the parent's, shared by ``vfork``) into the new ``ru_maxrss``. A
benchmark parent that generated scenes (hundreds of MB) would so lift every small job's
``ru_maxrss`` to its own peak. Started from this ~10 MB launcher, the job's own peak shows.
"""


@dataclass(frozen=True)
class Layout:
    """Where the scenes sit in the mosaic."""

    scenes: int
    size: int

    @property
    def side(self) -> int:
        """Scenes per row of the scene grid."""
        return math.ceil(math.sqrt(self.scenes))

    @property
    def overlap(self) -> int:
        """Overlap of neighbouring scenes in pixels (~10 % of the edge)."""
        return round(0.1 * self.size)

    @property
    def step(self) -> int:
        """Distance between the origins of neighbouring scenes in pixels."""
        return self.size - self.overlap

    @property
    def mosaic(self) -> int:
        """Edge of the whole mosaic in pixels."""
        return self.step * (self.side - 1) + self.size

    def origin(self, k: int) -> tuple[int, int]:
        """Mosaic ``(row, col)`` of scene ``k``'s top-left pixel."""
        return (k // self.side) * self.step, (k % self.side) * self.step

    def path(self, folder: Path, k: int) -> Path:
        """File of scene ``k``."""
        return folder / f"scene_{k:02d}.tif"


def distortions(n: int, seed: int = SEED) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Injected gains and offsets ``(n, 4)``; scene 0 is left untouched."""
    rng = np.random.default_rng(seed + 1)
    gains = rng.uniform(0.8, 1.2, (n, 4))
    offsets = rng.uniform(-150.0, 150.0, (n, 4))
    gains[0], offsets[0] = 1.0, 0.0
    return gains, offsets


def _bilinear_axis(start: int, count: int, mosaic: int, base: int) -> tuple[NDArray[np.intp], F32]:
    """Base-canvas indices and weights of mosaic pixels ``start .. start+count`` (pixel centres)."""
    u = (np.arange(start, start + count) + 0.5) * (base / mosaic) - 0.5
    u = np.clip(u, 0.0, base - 1.0)
    i0 = np.minimum(np.floor(u).astype(np.intp), base - 2)
    return i0, (u - i0).astype(np.float32)


class Truth:
    """The undistorted mosaic, evaluated on demand for any window (pure function of position)."""

    def __init__(self, layout: Layout, seed: int = SEED) -> None:
        # imported here: a floor process importing this module should not pay for them (~0.5 s)
        from scipy.ndimage import gaussian_filter

        from stacrrn.samples import landscape

        self.layout = layout
        self.base = landscape(BASE, BASE, seed).astype(np.float32)
        rng = np.random.default_rng(seed + 2)
        tex = gaussian_filter(rng.normal(size=(TEXTURE, TEXTURE)), 1.0, mode="wrap")
        self.texture = (1.0 + 0.05 * tex / tex.std()).astype(np.float32)

    def window(self, row0: int, col0: int, height: int, width: int) -> F32:
        """Truth ``(4, height, width)`` of a mosaic window."""
        m = self.layout.mosaic
        ri, rw = _bilinear_axis(row0, height, m, BASE)
        ci, cw = _bilinear_axis(col0, width, m, BASE)
        rows = self.base[:, ri, :] * (1 - rw)[None, :, None] + self.base[:, ri + 1, :] * rw[None, :, None]
        img = rows[:, :, ci] * (1 - cw) + rows[:, :, ci + 1] * cw
        del rows
        tr = np.arange(row0, row0 + height) % TEXTURE
        tc = np.arange(col0, col0 + width) % TEXTURE
        img *= self.texture[tr[:, None], tc[None, :]]
        return img.astype(np.float32, copy=False)


def _scene_params(layout: Layout, k: int, gain: NDArray[np.float64], offset: NDArray[np.float64]) -> dict[str, Any]:
    return {
        "version": GENERATOR_VERSION,
        "seed": SEED,
        "scenes": layout.scenes,
        "size": layout.size,
        "index": k,
        "gain": [float(g) for g in gain],
        "offset": [float(o) for o in offset],
    }


def _scene_is_current(path: Path, params: dict[str, Any]) -> bool:
    try:
        with rasterio.open(path) as src:
            ok = src.width == src.height == params["size"] and src.count == 4 and src.dtypes[0] == "uint16"
            return bool(ok and json.loads(src.tags().get(TAG, "{}")) == params)
    except (rasterio.errors.RasterioError, OSError, ValueError):
        return False


def _write_scene(truth: Truth, folder: Path, k: int, gain: NDArray[np.float64], offset: NDArray[np.float64]) -> None:
    layout = truth.layout
    size = layout.size
    r0, c0 = layout.origin(k)
    final = layout.path(folder, k)
    tmp = final.with_suffix(".partial.tif")
    transform = Affine(PIXEL, 0.0, ORIGIN[0] + PIXEL * c0, 0.0, -PIXEL, ORIGIN[1] - PIXEL * r0)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 4,
        "dtype": "uint16",
        "nodata": 0,
        "crs": "EPSG:32633",
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "zstd",
        "predictor": 2,
    }
    g = gain.astype(np.float32)[:, None, None]
    o = offset.astype(np.float32)[:, None, None]
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, STRIP):
            h = min(STRIP, size - row)
            img = truth.window(r0 + row, c0, h, size)
            img *= g
            img += o
            np.rint(img, out=img)
            np.clip(img, 1, 65535, out=img)
            dst.write(img.astype(np.uint16), window=Window(0, row, size, h))
        dst.descriptions = ("blue", "green", "red", "nir")
        dst.update_tags(**{TAG: json.dumps(_scene_params(layout, k, gain, offset))})
    tmp.replace(final)


def make_scenes(layout: Layout, folder: Path, workers: int) -> tuple[list[Path], float, int]:
    """Write missing or outdated scenes; return all paths, seconds spent and number written."""
    folder.mkdir(parents=True, exist_ok=True)
    gains, offsets = distortions(layout.scenes)
    todo = [
        k
        for k in range(layout.scenes)
        if not _scene_is_current(layout.path(folder, k), _scene_params(layout, k, gains[k], offsets[k]))
    ]
    t0 = time.perf_counter()
    if todo:
        truth = Truth(layout)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda k: _write_scene(truth, folder, k, gains[k], offsets[k]), todo))
    return [layout.path(folder, k) for k in range(layout.scenes)], time.perf_counter() - t0, len(todo)


def recovery(gains: NDArray[np.float64], offsets: NDArray[np.float64], injected_gains: NDArray[np.float64],
             injected_offsets: NDArray[np.float64]) -> dict[str, float]:  # fmt: skip
    """A global fit's ``(images, bands)`` gains and offsets against the injected ones: the largest errors.

    The fit undoes the distortion: ``gain * injected_gain`` should be 1 and
    ``gain * injected_offset + offset`` 0 (DN).
    """
    return {
        "max_gain_rel_error": float(np.max(np.abs(gains * injected_gains - 1))),
        "max_offset_error_dn": float(np.max(np.abs(gains * injected_offsets + offsets))),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _copy_scene(path: Path, out: Path) -> None:
    grid = open_raster(path).grid
    with rasterio.open(path) as src, cog_writer(out, grid, src.count, src.dtypes[0], src.nodata) as writer:
        for row0 in range(0, grid.height, WINDOW):
            for col0 in range(0, grid.width, WINDOW):
                box = Box(row0, col0, min(row0 + WINDOW, grid.height), min(col0 + WINDOW, grid.width))
                writer.write(box, src.read(window=Window(col0, row0, box.width, box.height)))


def stage_floor(paths: list[Path], out: Path, workers: int) -> dict[str, Any]:
    """Read every scene once and write it once as a COG; return seconds and peak RSS."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda p: _copy_scene(p, out / p.name), paths))
    seconds = time.perf_counter() - t0
    written = len(list(out.glob("*.tif")))
    if written != len(paths):
        raise RuntimeError(f"floor wrote {written} files for {len(paths)} scenes")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def stage_engine(
    paths: list[Path], out: Path, workers: int, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, Any]:
    """Run ``stacrrn.match`` from scratch; return seconds, peak RSS and gain/offset recovery errors.

    ``progress`` is passed on to ``stacrrn.match`` (e.g. to time its passes).
    """
    import stacrrn
    from stacrrn.pipeline.execution.progress import no_progress

    shutil.rmtree(out, ignore_errors=True)
    (out / "stacrrn-statistics.npz").unlink(missing_ok=True)
    t0 = time.perf_counter()
    progress = progress or no_progress
    result = stacrrn.match(
        paths, out, references=[paths[0].stem], method="global+local", workers=workers, progress=progress
    )
    seconds = time.perf_counter() - t0
    if result.statistics_reused:
        raise RuntimeError("statistics were reused; the timing would not be honest")
    injected_g, injected_o = [], []
    for p in paths:
        with rasterio.open(p) as src:
            params = json.loads(src.tags()[TAG])
        injected_g.append(params["gain"])
        injected_o.append(params["offset"])
    g, o = np.array(injected_g), np.array(injected_o)
    fit = result.model.global_fit
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        **recovery(fit.gains, fit.offsets, g, o),
        "warnings": result.warnings,
    }


def _first_valid(plan: Any, box: Box) -> tuple[Box, NDArray[np.uint16]]:
    out = np.zeros((len(plan.bands), box.height, box.width), dtype=np.uint16)
    filled = np.zeros((box.height, box.width), dtype=bool)
    for values, valid in plan.read_chunk(box, plan.images_in(box)).values():
        take = valid & ~filled
        out[:, take] = values[:, take]
        filled |= take
    return box, out


def stage_mosaic_floor(paths: list[Path], out: Path, workers: int) -> dict[str, Any]:
    """Read every pixel once on the mosaic grid and write the mosaic COG once (no seams, no blending)."""
    from stacrrn.pipeline.execution.parallel import imap_bounded
    from stacrrn.pipeline.inputs.plan import make_plan

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    plan = make_plan(paths)
    with cog_writer(out / "mosaic.tif", plan.grid, len(plan.bands), "uint16", 0) as writer:
        for box, data in imap_bounded(lambda b: _first_valid(plan, b), plan.chunks, workers):
            writer.write(box, data)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def stage_mosaic(paths: list[Path], out: Path, workers: int) -> dict[str, Any]:
    """``stacrrn`` seamlines and a feathered mosaic of ``paths``; seconds, peak RSS, seam jump."""
    from stacrrn.pipeline.mosaic.mosaic import mosaic, mosaic_sources

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = mosaic(mosaic_sources(paths, workers=workers), str(out), feather=32.0, workers=workers)
    return {
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": peak_rss_mb(),
        "seam_jump": [round(float(v), 2) for v in result.metrics.jump],
    }


def floor_engine_summary(floor: dict[str, Any], engine: dict[str, Any]) -> dict[str, Any]:
    """Times, their ratio, peak RSS and recovery errors of a floor stage and an engine stage."""
    return {
        "floor_seconds": round(floor["seconds"], 2),
        "engine_seconds": round(engine["seconds"], 2),
        "ratio_engine_floor": round(engine["seconds"] / floor["seconds"], 2),
        "engine_peak_rss_mb": round(engine["peak_rss_mb"], 1),
        "floor_peak_rss_mb": round(floor["peak_rss_mb"], 1),
        "max_gain_rel_error": engine["max_gain_rel_error"],
        "max_offset_error_dn": engine["max_offset_error_dn"],
        "cpus": os.cpu_count(),
    }


def paired(run: Callable[[str], dict[str, Any]], floor: str, engine: str, repeat: int) -> dict[str, Any]:
    """Run ``floor`` then ``engine`` ``repeat`` times in turn; the pair of median ratio, with all ratios.

    The machine's speed drifts by 20-40 % over minutes; pairs run back to back see about the
    same machine, and the median pair is reported.
    """
    pairs = [(run(floor), run(engine)) for _ in range(repeat)]
    pairs.sort(key=lambda pair: pair[1]["seconds"] / pair[0]["seconds"])
    first, second = pairs[(len(pairs) - 1) // 2]
    ratios = [round(b["seconds"] / a["seconds"], 2) for a, b in pairs]
    return {"floor": first, "engine": second, "ratios": ratios}


def run_stage(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a fresh interpreter and return its result."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--stage",
        stage,
        "--scenes",
        str(args.scenes),
        "--size",
        str(args.size),
        "--workers",
        str(args.workers),
        "--out",
        str(args.out),
    ]
    return run_child(cmd)


def print_summary(summary: dict[str, Any]) -> None:
    """Print a benchmark's results as an aligned table, then as one JSON line."""
    width = max(len(k) for k in summary)
    print()
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")
    print()
    print(json.dumps(summary), flush=True)


def compile_stacrrn() -> None:
    """Byte-compile stacrrn's modules where they are stale, as a regular ``pip install`` does once.

    With ``PYTHONDONTWRITEBYTECODE=1`` (set on this machine) an editable install is compiled
    again by every benchmark process: 0.1-0.15 s of each stacrrn run, which peers installed by
    pip (their bytecode written at install time) do not pay.
    """
    import compileall

    import stacrrn

    compileall.compile_dir(Path(stacrrn.__file__).parent, quiet=1)


def run_child(cmd: list[str], cpus: set[int] | None = None) -> dict[str, Any]:
    """Run a benchmark stage in a fresh interpreter; return the JSON it printed after :data:`RESULT_PREFIX`.

    stacrrn's bytecode is brought up to date first (:func:`compile_stacrrn`). The stage is
    started through :data:`LAUNCHER`, so its ``ru_maxrss`` is its own. ``cpus`` confines it
    (and every thread it starts, GDAL's included) to those CPUs.
    """
    compile_stacrrn()

    def confine() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    launcher = [sys.executable, "-c", LAUNCHER, "", *cmd]
    proc = subprocess.run(launcher, stdout=subprocess.PIPE, text=True, check=True, preexec_fn=confine)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd[1:4])} printed no result:\n{proc.stdout}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


def _sample_descendants(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """Keep in ``peak[0]`` the largest total RSS (bytes) of ``pid``'s descendants, sampled every 50 ms."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.wait(0.05):
        try:
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in root.children(recursive=True)))
        except psutil.Error:
            continue


def run_measured(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion through :data:`LAUNCHER`; seconds from launch to exit, peak RSS (MB), exit code.

    The peak is the larger of the job's ``ru_maxrss`` (the job and the processes it waited for,
    each alone) and the total RSS of its process tree sampled every 50 ms (so a pool of worker
    processes counts in full). Output goes to ``log``; ``log`` holds its last lines.
    """
    result = log.with_suffix(".rusage.json")
    result.unlink(missing_ok=True)
    stop, peak = threading.Event(), [0]
    with log.open("w") as fh:
        launcher = [sys.executable, "-c", LAUNCHER, str(result), *cmd]
        proc = subprocess.Popen(launcher, stdout=fh, stderr=subprocess.STDOUT, env=env)
        watcher = threading.Thread(target=_sample_descendants, args=(proc.pid, stop, peak), daemon=True)
        watcher.start()
        proc.wait()
        stop.set()
        watcher.join()
    tail = " | ".join(log.read_text().strip().splitlines()[-5:])
    if not result.exists():
        return {"seconds": math.nan, "peak_rss_mb": math.nan, "exit": proc.returncode, "log": tail}
    usage = json.loads(result.read_text())
    rss = max(usage["maxrss_kb"] * 1024, peak[0]) / 1e6
    return {"seconds": usage["seconds"], "peak_rss_mb": rss, "exit": usage["exit"], "log": tail}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one stage (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int, default=16, help="number of scenes (default 16, a 4 x 4 grid)")
    parser.add_argument("--size", type=int, default=4096, help="scene edge in pixels (default 4096)")
    parser.add_argument("--workers", type=int, default=2, help="threads for both the floor and the engine")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working folder (default benchmarks/out)")
    parser.add_argument("--repeat", type=int, default=1, help="floor/engine pairs run in turn; the median is reported")
    parser.add_argument(
        "--stage", choices=["all", "floor", "engine", "mosaic-floor", "mosaic"], default="all", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    layout = Layout(args.scenes, args.size)
    scene_dir = args.out / "scenes"
    paths = [layout.path(scene_dir, k) for k in range(args.scenes)]

    if args.stage == "floor":
        print(RESULT_PREFIX + json.dumps(stage_floor(paths, args.out / "floor", args.workers)), flush=True)
        return 0
    if args.stage == "engine":
        print(RESULT_PREFIX + json.dumps(stage_engine(paths, args.out / "normalized", args.workers)), flush=True)
        return 0
    normalized = [args.out / "normalized" / p.name for p in paths]
    if args.stage in ("mosaic-floor", "mosaic"):
        stage = stage_mosaic_floor if args.stage == "mosaic-floor" else stage_mosaic
        result = stage(normalized, args.out / args.stage, args.workers)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    if args.scenes < 2:
        parser.error("--scenes must be at least 2")
    print(
        f"scenes: {args.scenes} x {args.size}^2 px on a {layout.side}x{layout.side} grid, "
        f"overlap {layout.overlap} px, mosaic {layout.mosaic}^2 px -> {scene_dir}",
        flush=True,
    )
    paths, gen_seconds, written = make_scenes(layout, scene_dir, args.workers)
    print(f"generated {written} scene(s) in {gen_seconds:.1f} s, reused {args.scenes - written}", flush=True)
    print(f"running the I/O floor and the engine ({args.repeat}x) ...", flush=True)
    match_runs = paired(lambda stage: run_stage(stage, args), "floor", "engine", args.repeat)
    floor, engine = match_runs["floor"], match_runs["engine"]
    print(f"running the mosaic floor and the mosaic ({args.repeat}x) ...", flush=True)
    mosaic_runs = paired(lambda stage: run_stage(stage, args), "mosaic-floor", "mosaic", args.repeat)
    mosaic_floor, blended = mosaic_runs["floor"], mosaic_runs["engine"]

    pixels = args.size * args.size
    summary = {
        "scenes": args.scenes,
        "size": args.size,
        "pixels_per_scene": pixels,
        "bands": 4,
        "workers": args.workers,
        "input_gb_uncompressed": round(args.scenes * pixels * 4 * 2 / 1e9, 3),
        "input_gb_on_disk": round(sum(p.stat().st_size for p in paths) / 1e9, 3),
        **floor_engine_summary(floor, engine),
        "ratios_engine_floor": match_runs["ratios"],
        "mosaic_floor_seconds": round(mosaic_floor["seconds"], 2),
        "mosaic_seconds": round(blended["seconds"], 2),
        "ratio_mosaic_floor": round(blended["seconds"] / mosaic_floor["seconds"], 2),
        "ratios_mosaic_floor": mosaic_runs["ratios"],
        "mosaic_peak_rss_mb": round(blended["peak_rss_mb"], 1),
        "mosaic_floor_peak_rss_mb": round(mosaic_floor["peak_rss_mb"], 1),
        "mosaic_seam_jump": blended["seam_jump"],
    }
    rows = [
        ("scenes", f"{args.scenes} ({layout.side}x{layout.side} grid, {args.workers} workers)"),
        ("pixels per scene", f"{pixels:,} ({args.size} x {args.size}, 4 bands uint16)"),
        ("total input (uncompressed)", f"{summary['input_gb_uncompressed']:.2f} GB"),
        ("total input (on disk, ZSTD)", f"{summary['input_gb_on_disk']:.2f} GB"),
        ("floor (read + write COG)", f"{floor['seconds']:.1f} s"),
        ("engine (stacrrn.match)", f"{engine['seconds']:.1f} s"),
        ("ratio engine / floor", f"{summary['ratio_engine_floor']:.2f}"),
        ("engine peak RSS", f"{engine['peak_rss_mb']:.0f} MB"),
        ("floor peak RSS", f"{floor['peak_rss_mb']:.0f} MB"),
        ("max |gain * injected - 1|", f"{engine['max_gain_rel_error']:.2e}"),
        ("max |offset error| (DN)", f"{engine['max_offset_error_dn']:.3f}"),
        ("mosaic floor (read + write COG)", f"{mosaic_floor['seconds']:.1f} s"),
        ("mosaic (seams + feathered blend)", f"{blended['seconds']:.1f} s"),
        ("ratio mosaic / mosaic floor", f"{summary['ratio_mosaic_floor']:.2f}"),
        ("mosaic peak RSS", f"{blended['peak_rss_mb']:.0f} MB"),
        ("mosaic seam jump (DN, per band)", str(blended["seam_jump"])),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for w in engine["warnings"]:
        print(f"warning: {w}")
    print()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
