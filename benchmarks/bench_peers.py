"""Benchmark: stacrrn against peer tools (Orfeo ToolBox ``Mosaic``, spectralmatch) on the same scenes.

One command::

    .venv/bin/python benchmarks/bench_peers.py [--scenes 4] [--size 2048] [--workers 2] [--out DIR]

1. **Scenes** from ``bench_mosaic``'s generator (``OUT/scenes``; scene 0 undistorted, the
   reference; the others with a known per-band gain and offset), reused when current.
2. **Peers**, installed when missing: Debian's ``otb-bin`` (``apt-get``), and spectralmatch
   ``SM_VERSION`` (the last release on rasterio; later ones need GDAL's Python bindings) in
   ``OUT/peers-venv``, with ``--no-deps`` and only the packages its matching code imports (no
   torch: ``omnicloudmask``, needed only for cloud masks, is stubbed at import). A peer that
   cannot be installed is reported as unavailable.
3. **Jobs**, each in a fresh process, wall time from launch to exit and peak RSS (the larger of
   the process tree's ``ru_maxrss`` and its sampled total RSS, so worker pools count in full):
   per-scene ``global`` and ``global+local`` (stacrrn ``match``; spectralmatch
   ``global_regression`` then ``local_block_adjustment`` on 32 x 32 blocks; scene 0 as its
   only model image when every scene overlaps it, since pairs without a model image are
   dropped, else all images), and ``mosaic``
   (stacrrn: statistics and the global fit, then ``mosaic(mosaic_sources(scenes, model=...),
   feather=0)``, which normalizes the scenes as it blends them, with no corrected copy of
   each scene; ``otbcli_Mosaic -harmo.method band -harmo.cost rmse -comp.feather none``).
   Same worker count for every tool.
4. **Quality**, streamed by strips against the generator's truth: pixel RMSE in DN (raw, and
   after one per-band affine fit of truth on output over all pixels, which forgives a tool that
   normalizes toward the mean of the images rather than scene 0), per scene and band the fit
   ``output = gain * truth + offset`` (max ``|gain - 1|``, max ``|offset|``), and the RMS
   difference of overlapping outputs' means. The uncorrected inputs are scored as a baseline.

The results are printed as a table, then as one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mosaic import (
    DEFAULT_OUT,
    ORIGIN,
    PIXEL,
    RESULT_PREFIX,
    Layout,
    Truth,
    compile_stacrrn,
    make_scenes,
    run_measured,
)

SM_VERSION = "1.0.4"
"""Newest spectralmatch on rasterio; 1.1.0 and later import ``osgeo`` (GDAL's Python bindings)."""
SM_DEPS = ["numpy", "scipy", "rasterio", "fiona", "scikit-image", "tqdm", "geopandas", "matplotlib", "networkx"]
"""What spectralmatch 1.0.4 imports, minus ``omnicloudmask`` (torch) and ``fire`` (its CLI)."""
SM_CODE = """
import json, sys, types
stub = types.ModuleType("omnicloudmask")  # imported by spectralmatch.mask (torch): cloud masks only
stub.predict_from_array = None
sys.modules["omnicloudmask"] = stub
import spectralmatch as sm
if len(sys.argv) < 2:  # probe: version and the two matching functions
    print(sm.__version__, sm.global_regression.__name__, sm.local_block_adjustment.__name__)
    sys.exit()
a = json.loads(sys.argv[1])
common = dict(image_parallel_workers=("process", a["workers"]), window_size="internal", save_as_cog=True)
ref = dict(specify_model_images=("include", [a["reference"]])) if a["reference"] else {}
out = sm.global_regression(a["inputs"], a["global"], **ref, **common)
if a["local"]:
    sm.local_block_adjustment(out, a["local"], number_of_blocks=(32, 32), **common)
"""
OTB_RAM_MB = 1024
"""``-ram`` and ``OTB_MAX_RAM_HINT`` for OTB (its default is 256 MB)."""
STRIP = 1024
JOBS = [("stacrrn", "global"), ("spectralmatch", "global"), ("stacrrn", "global+local")]
JOBS += [("spectralmatch", "global+local"), ("stacrrn", "mosaic"), ("otb", "mosaic")]


@dataclass
class Peer:
    """An external tool: how to run it, or why it cannot be run."""

    name: str
    exe: str | None
    version: str
    note: str = ""


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def ensure_otb() -> Peer:
    """``otbcli_Mosaic``, installing Debian's ``otb-bin`` when it is not on PATH."""
    if not shutil.which("otbcli_Mosaic"):
        print("otbcli_Mosaic not found: apt-get install -y --no-install-recommends otb-bin ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "install", "-y", "--no-install-recommends", "otb-bin"]
        if _run(apt, env=env).returncode != 0:
            _run(["apt-get", "update"], env=env)
            proc = _run(apt, env=env)
            if proc.returncode != 0:
                return Peer("otb", None, "", f"apt-get install otb-bin failed: {_tail(proc.stderr)}")
    exe = shutil.which("otbcli_Mosaic")
    if exe is None:
        return Peer("otb", None, "", "otb-bin installed but otbcli_Mosaic is not on PATH")
    proc = _run([exe, "-help"])
    found = re.search(r"version ([\d.]+)", proc.stdout + proc.stderr)
    return Peer("otb", exe, found.group(1) if found else "?")


def ensure_spectralmatch(venv: Path) -> Peer:
    """Python of a venv holding spectralmatch ``SM_VERSION`` (created and filled when needed)."""
    py = venv / "bin" / "python"
    probe = _run([str(py), "-c", SM_CODE]) if py.exists() else None
    if probe is None or probe.returncode != 0 or not probe.stdout.startswith(SM_VERSION + " "):
        print(f"installing spectralmatch {SM_VERSION} (--no-deps, no torch) into {venv} ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for cmd in ([sys.executable, "-m", "venv", str(venv)], [*pip, "--no-deps", f"spectralmatch=={SM_VERSION}"]):
            proc = _run(cmd)
            if proc.returncode != 0:
                return Peer("spectralmatch", None, "", f"{' '.join(cmd[:4])} failed: {_tail(proc.stderr)}")
        proc = _run([*pip, *SM_DEPS])
        if proc.returncode != 0:
            return Peer("spectralmatch", None, "", f"installing {SM_DEPS} failed: {_tail(proc.stderr)}")
        probe = _run([str(py), "-c", SM_CODE])
    if probe.returncode != 0:
        return Peer("spectralmatch", None, "", f"import failed: {_tail(probe.stderr)}")
    return Peer("spectralmatch", str(py), probe.stdout.split()[0], "deps: " + ", ".join(SM_DEPS))


def stage_stacrrn(job: str, paths: list[Path], out: Path, workers: int) -> None:
    """Child: one stacrrn job from scratch (per-scene COGs, or a hard-cut mosaic normalized while blended)."""
    import stacrrn

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    if job == "mosaic":
        plan = stacrrn.make_plan(paths)
        stats = stacrrn.compute_statistics(plan, workers)
        model = stacrrn.fit_model(plan, stats, method="global", references=[0])
        seconds, warnings = {"model": time.perf_counter() - t0}, []
        sources = stacrrn.mosaic_sources(paths, model=model, workers=workers)
        stacrrn.mosaic(sources, str(out), feather=0.0, workers=workers)
        seconds["mosaic"] = time.perf_counter() - t0 - seconds["model"]
    else:
        result = stacrrn.match(paths, out / "scenes", references=[paths[0].stem], method=job, workers=workers)
        seconds, warnings = {"match": time.perf_counter() - t0}, result.warnings
    print(RESULT_PREFIX + json.dumps({"warnings": warnings, "seconds": seconds}), flush=True)


def stacrrn_detail(log: Path) -> dict[str, Any]:
    """The in-process result line of a stacrrn child (seconds per step, warnings)."""
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith(RESULT_PREFIX)]
    detail: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else {}
    return detail


def job_command(tool: str, job: str, args: argparse.Namespace, paths: list[Path], peers: dict[str, Peer]) -> list[str]:
    """The command line of one job (outputs under ``OUT/runs/<tool>-<job>``)."""
    out = args.out / "runs" / f"{tool}-{job}"
    if tool == "stacrrn":
        opts = ["--scenes", str(args.scenes), "--size", str(args.size), "--workers", str(args.workers)]
        return [sys.executable, str(Path(__file__).resolve()), "--stage", job, "--out", str(args.out), *opts]
    shutil.rmtree(out, ignore_errors=True)
    for folder in ("global", "local"):
        (out / folder).mkdir(parents=True)
    exe = peers[tool].exe
    assert exe is not None
    if tool == "otb":
        target = str(out / "mosaic.tif") + "?&gdal:co:TILED=YES&gdal:co:COMPRESS=ZSTD&gdal:co:PREDICTOR=2"
        harmo = ["-harmo.method", "band", "-harmo.cost", "rmse", "-comp.feather", "none"]
        return [exe, "-il", *map(str, paths), "-out", target, "uint16", *harmo, "-nodata", "0", "-ram", str(OTB_RAM_MB)]
    spec = {
        "inputs": [str(p) for p in paths],
        "global": [str(out / "global" / p.name) for p in paths],
        "local": [str(out / "local" / p.name) for p in paths] if job == "global+local" else None,
        "reference": paths[0].stem if Layout(args.scenes, args.size).side <= 2 else None,
        "workers": args.workers,
    }
    return [exe, "-c", SM_CODE, json.dumps(spec)]


def outputs_of(tool: str, job: str, out: Path, paths: list[Path]) -> list[Path]:
    """Rasters a job wrote: one mosaic, or one file per scene."""
    run = out / "runs" / f"{tool}-{job}"
    if job == "mosaic":
        return [run / "mosaic.tif"]
    folder = run / "scenes" if tool == "stacrrn" else run / ("local" if job == "global+local" else "global")
    return [folder / p.name for p in paths]


class Moments:
    """Per-band sums over valid pixels of output ``x`` and truth ``y``: n, x, y, xx, xy, yy, (x-y)^2."""

    def __init__(self, bands: int = 4) -> None:
        self.s = np.zeros((7, bands))

    def add(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        """Accumulate ``(bands, pixels)`` outputs and truths."""
        d = x - y
        n = np.full(x.shape[0], x.shape[1], dtype=np.float64)
        self.s += np.stack([n, x.sum(1), y.sum(1), (x * x).sum(1), (x * y).sum(1), (y * y).sum(1), (d * d).sum(1)])

    def centered(self) -> tuple[NDArray[np.float64], ...]:
        """``n``, centred ``xx``, ``xy``, ``yy`` and the means of ``x`` and ``y`` per band."""
        n, sx, sy, sxx, sxy, syy, _ = self.s
        return n, sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n, sx / n, sy / n

    def rmse_raw(self) -> float:
        """Pixel RMSE of output against truth (DN, all bands pooled)."""
        return float(np.sqrt(self.s[6].sum() / self.s[0].sum()))

    def rmse_affine(self) -> float:
        """RMSE of truth against its best per-band affine fit on the output (DN, pooled)."""
        n, xx, xy, yy, _, _ = self.centered()
        return float(np.sqrt(np.maximum(yy - xy * xy / xx, 0.0).sum() / n.sum()))

    def gain_offset(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Least-squares ``output = gain * truth + offset`` per band."""
        _, _, xy, yy, mx, my = self.centered()
        gain = xy / yy
        return gain, mx - gain * my


def _strips(path: Path) -> Any:
    """``(data, mosaic row, mosaic col)`` of successive row strips of a raster."""
    with rasterio.open(path) as src:
        r0 = round((ORIGIN[1] - src.transform.f) / PIXEL)
        c0 = round((src.transform.c - ORIGIN[0]) / PIXEL)
        for row in range(0, src.height, STRIP):
            yield src.read(window=Window(0, row, src.width, min(STRIP, src.height - row))), r0 + row, c0


def score_file(path: Path, truth: Truth) -> Moments:
    """Moments of one output against the truth, pixels valid in every band only."""
    m = Moments()
    for data, row, col in _strips(path):
        valid = np.all(data != 0, axis=0)
        if valid.any():
            t = truth.window(row, col, data.shape[1], data.shape[2])
            m.add(data[:, valid].astype(np.float64), t[:, valid].astype(np.float64))
    return m


def overlap_rms(paths: list[Path], layout: Layout) -> float:
    """RMS over overlapping scene pairs and bands of the difference of their outputs' means (DN)."""
    diffs = []
    for i, j in combinations(range(len(paths)), 2):
        (ri, ci), (rj, cj) = layout.origin(i), layout.origin(j)
        r0, r1, c0, c1 = max(ri, rj), min(ri, rj) + layout.size, max(ci, cj), min(ci, cj) + layout.size
        if r1 <= r0 or c1 <= c0:
            continue
        data = []
        for p, (r, c) in ((paths[i], (ri, ci)), (paths[j], (rj, cj))):
            with rasterio.open(p) as src:
                data.append(src.read(window=Window(c0 - c, r0 - r, c1 - c0, r1 - r0)))
        valid = np.all(data[0] != 0, axis=0) & np.all(data[1] != 0, axis=0)
        diffs.append(data[0][:, valid].mean(1) - data[1][:, valid].mean(1))
    return float(np.sqrt(np.mean(np.square(diffs))))


def quality(files: list[Path], truth: Truth) -> dict[str, Any]:
    """RMSE (raw, after a common affine fit), per-scene gain/offset errors, overlap consistency."""
    per_file = [score_file(p, truth) for p in files]
    total = Moments()
    for m in per_file:
        total.s += m.s
    result: dict[str, Any] = {"rmse_raw": total.rmse_raw(), "rmse_affine": total.rmse_affine()}
    if len(files) > 1:
        fits = [m.gain_offset() for m in per_file]
        result["max_gain_error"] = float(max(np.abs(g - 1).max() for g, _ in fits))
        result["max_offset_error"] = float(max(np.abs(o).max() for _, o in fits))
        result["overlap_rms"] = overlap_rms(files, truth.layout)
    return result


def run_jobs(args: argparse.Namespace, paths: list[Path], peers: dict[str, Peer]) -> list[dict[str, Any]]:
    """Run every job whose tool is available; one record per job (timings, then quality)."""
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(args.workers), "OTB_MAX_RAM_HINT": str(OTB_RAM_MB)}
    records: list[dict[str, Any]] = []
    compile_stacrrn()
    for tool, job in JOBS:
        rec: dict[str, Any] = {"tool": tool, "job": job}
        records.append(rec)
        if tool not in args.tools or (tool in peers and peers[tool].exe is None):
            rec["note"] = peers[tool].note if tool in peers else "skipped"
            continue
        print(f"running {tool} {job} ...", flush=True)
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        cmd = job_command(tool, job, args, paths, peers)
        rec.update(run_measured(cmd, args.out / "runs" / f"{tool}-{job}.log", env))
        tail = rec.pop("log")
        if rec["exit"] != 0:
            rec["note"] = f"failed: {tail.split(' | ')[-1]}"
        elif tool == "stacrrn":
            rec["detail"] = stacrrn_detail(args.out / "runs" / f"{tool}-{job}.log")
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in rec["detail"]["seconds"].items())
            rec["note"] = f"in process: {steps}" + "".join(f"; warning: {w}" for w in rec["detail"]["warnings"])
    return records


def table(records: list[dict[str, Any]]) -> list[str]:
    """Fixed-width result rows; ratios are to stacrrn's time on the same job."""
    base = {r["job"]: r["seconds"] for r in records if r["tool"] == "stacrrn" and "seconds" in r}
    head = f"{'tool':<14}{'job':<14}{'seconds':>9}{'ratio':>7}{'RSS MB':>8}{'RMSE':>8}{'RMSE aff':>9}"
    lines = [head + f"{'gain err':>10}{'off err':>9}{'overlap':>9}"]

    def num(r: dict[str, Any], key: str, width: int, fmt: str) -> str:
        return f"{r[key]:>{width}{fmt}}" if r.get(key) is not None else f"{'-':>{width}}"

    for r in records:
        if job_base := base.get(r["job"]):
            r["ratio"] = r["seconds"] / job_base if r.get("exit") == 0 else None
        cells = [num(r, "seconds", 9, ".1f"), num(r, "ratio", 7, ".2f"), num(r, "peak_rss_mb", 8, ".0f")]
        cells += [num(r, "rmse_raw", 8, ".2f"), num(r, "rmse_affine", 9, ".2f"), num(r, "max_gain_error", 10, ".1e")]
        cells += [num(r, "max_offset_error", 9, ".2f"), num(r, "overlap_rms", 9, ".2f")]
        note = f"  ({r['note'][:100]})" if r.get("note") else ""
        lines.append(f"{r['tool']:<14}{r['job']:<14}" + "".join(cells) + note)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one stacrrn job (child) or the whole benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4, a 2 x 2 grid)")
    parser.add_argument("--size", type=int, default=2048, help="scene edge in pixels (default 2048)")
    parser.add_argument("--workers", type=int, default=2, help="threads/processes for every tool (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "peers", help="working folder")
    parser.add_argument("--tools", default="stacrrn,otb,spectralmatch", help="comma-separated tools to run")
    parser.add_argument("--stage", choices=["global", "global+local", "mosaic"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out, args.tools = args.out.resolve(), args.tools.split(",")
    layout = Layout(args.scenes, args.size)
    paths = [layout.path(args.out / "scenes", k) for k in range(args.scenes)]
    if args.stage:
        stage_stacrrn(args.stage, paths, args.out / "runs" / f"stacrrn-{args.stage}", args.workers)
        return 0
    if args.scenes < 2:
        parser.error("--scenes must be at least 2")
    print(f"scenes: {args.scenes} x {args.size}^2 px, mosaic {layout.mosaic}^2 px -> {args.out / 'scenes'}", flush=True)
    paths, gen_seconds, written = make_scenes(layout, args.out / "scenes", args.workers)
    print(f"generated {written} scene(s) in {gen_seconds:.1f} s, reused {args.scenes - written}", flush=True)
    peers = {}
    if "otb" in args.tools:
        peers["otb"] = ensure_otb()
    if "spectralmatch" in args.tools:
        peers["spectralmatch"] = ensure_spectralmatch(args.out / "peers-venv")
    for p in peers.values():
        print(f"{p.name}: " + (f"version {p.version}" if p.exe else f"UNAVAILABLE ({p.note})"), flush=True)
    records = run_jobs(args, paths, peers)
    print("scoring outputs against the truth ...", flush=True)
    truth = Truth(layout)
    records.insert(0, {"tool": "input", "job": "uncorrected", **quality(paths, truth)})
    for rec in records:
        if rec.get("exit") == 0:
            rec.update(quality(outputs_of(rec["tool"], rec["job"], args.out, paths), truth))
    print("\n" + "\n".join(table(records)) + "\n")
    peer_info = {k: {"version": p.version, "available": p.exe is not None, "note": p.note} for k, p in peers.items()}
    summary = {"scenes": args.scenes, "size": args.size, "workers": args.workers, "cpus": os.cpu_count()}
    summary["spectralmatch_reference"] = paths[0].stem if layout.side <= 2 else "none (mean of all images)"
    print(RESULT_PREFIX + json.dumps({**summary, "peers": peer_info, "runs": records}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
