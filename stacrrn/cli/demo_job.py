"""The embedded default job, end to end on loopback services.

Sample scenes with known distortions (or real imagery from a folder) are published as COGs
and STAC items to a local S3 server (moto), served by a STAC API (``rustac serve``),
selected by a STAC search, normalized by :func:`stacrrn.run`, and the corrected COGs and
items are written back to S3 (and mirrored to a local folder to look at afterwards).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray

from stacrrn.core.metrics import affine_residual
from stacrrn.errors import InputError, OutputError
from stacrrn.io.stac import Search, gdal_path
from stacrrn.pipeline.execution.parallel import Workers
from stacrrn.pipeline.execution.progress import Progress, no_progress
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.run import RunResult, run
from stacrrn.samples import SampleMosaic, distort_rasters, write_sample_mosaic

BUCKET = "stacrrn-demo"
SAMPLE_BANDS = ["blue", "green", "red", "nir08"]
"""Band names (``eo:common_name``) of the generated scenes; real imagery gets b1, b2, ..."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and, for generated scenes, how close it came to the known truth.

    Attributes
    ----------
    result
        The run.
    stac_url, s3_endpoint
        The loopback services it used (gone once the demo returns).
    mirror
        Local copy of the outputs.
    sample
        The generated scenes and their distortions (``None`` for real imagery).
    gain_error
        Max relative error of the recovered gains (generated scenes without gradients).
    truth_error
        Per-band pixel RMSE to the truth after one common affine fit, over the truth's std:
        row 0 the inputs, row 1 the outputs.
    report
        The HTML report of the run (``folder/report/report.html``), made while the services ran.
    """

    result: RunResult
    stac_url: str
    s3_endpoint: str
    mirror: Path
    sample: SampleMosaic | None
    gain_error: float | None
    truth_error: NDArray[np.float64] | None
    report: Path


MARK = ".stacrrn-demo"
"""File marking a folder the demo made, so a later demo may replace it (and no other)."""


def _replace_folder(made: Path, target: Path) -> Path:
    """Put the folder ``made`` at ``target``, replacing what an earlier demo left there.

    Raises
    ------
    OutputError
        If ``target`` exists but was not made by the demo (it is never deleted then).
    """
    (made / MARK).touch()
    if target.exists():
        if not (target / MARK).exists():
            raise OutputError(f"{target} exists and was not written by stacrrn demo; choose another --out")
        shutil.rmtree(target)
    made.rename(target)
    return target


def _scenes(folder: Path, data: Path | None, gradient: float, distort: bool) -> tuple[SampleMosaic | None, list[Path]]:
    if data is None:
        sample = write_sample_mosaic(folder / "scenes", gradient=gradient)
        return sample, sample.paths
    paths = sorted(p for p in data.glob("*.tif") if p.is_file())
    if len(paths) < 2:
        raise InputError(f"{data} holds {len(paths)} GeoTIFF(s); the demo needs at least two overlapping ones")
    if not distort:
        return None, paths
    sample = distort_rasters(paths, folder / "scenes")
    return sample, sample.paths


def _truth_error(rasters: list[list[str]], sample: SampleMosaic) -> NDArray[np.float64]:
    """Pixel RMSE to the truth over valid pixels, after one common affine fit, per band / truth std.

    ``rasters`` holds, per image, one single-band raster path per band.
    """
    outs, truths = [], []
    for paths, truth in zip(rasters, sample.truth, strict=True):
        bands, masks = [], []
        for path in paths:
            with rasterio.open(path) as src:
                bands.append(src.read(1).astype(np.float64))
                masks.append(src.read_masks(1) > 0)
        valid = np.all(masks, axis=0)
        outs.append(np.stack(bands)[:, valid])
        truths.append(truth[:, valid])
    _, rel = affine_residual(np.concatenate(outs, axis=1), np.concatenate(truths, axis=1))
    return rel


def _asset_paths(items: list[dict[str, Any]]) -> list[list[str]]:
    """GDAL paths of each item's band assets, in band order."""
    return [[gdal_path(it["assets"][key]["href"]) for key in _bands(it)] for it in items]


def _bands(item: dict[str, Any]) -> list[str]:
    if "rrn:bands" in item["properties"]:
        return list(item["properties"]["rrn:bands"])
    return [k for k, a in item["assets"].items() if "data" in a.get("roles", [])]


def run_demo(
    folder: Path,
    data: Path | None = None,
    gradient: float = 0.1,
    workers: Workers = 2,
    progress: Progress = no_progress,
    distort: bool = True,
    rgb: Sequence[str] | None = None,
) -> DemoResult:
    """Publish scenes to loopback S3 + STAC API, normalize them from a STAC search, score the result.

    Parameters
    ----------
    folder
        Local working folder (generated scenes, mirror of the outputs in ``folder/normalized``).
    data
        A folder of overlapping GeoTIFFs to use instead of generated scenes (e.g. ../shared/data/...).
    gradient
        Planar gradient amplitude injected per generated tile on top of gains/offsets
        (0: gains/offsets only).
    workers
        Concurrent chunks/items.
    progress
        Progress callback.
    distort
        With ``data``: inject known gains/offsets into copies (first image untouched) and
        score the result against the originals; else normalize the imagery as it is.
    rgb
        Quick-look bands of the report (:func:`~stacrrn.report.build_report`).

    Returns
    -------
    DemoResult
        The run, where it went, and its scores against the truth for generated scenes.
    """
    from stacrrn.services import LoopbackS3, RustacAPI

    sample, paths = _scenes(folder, data, gradient, distort)
    names = SAMPLE_BANDS if data is None else None
    with LoopbackS3() as s3:
        s3.create_bucket(BUCKET)
        start = dt.datetime(2024, 6, 1, 10, tzinfo=dt.UTC)
        coll, items = catalog_rasters(
            paths,
            f"s3://{BUCKET}/scenes",
            "stacrrn-demo-scenes",
            band_names=names,
            split_bands=True,
            datetimes=[start + dt.timedelta(minutes=k) for k in range(len(paths))],
        )
        with RustacAPI(coll, items) as api:
            result = run(
                Search(stac=api.url, collections=("stacrrn-demo-scenes",)),
                f"s3://{BUCKET}/normalized",
                references=[sample.reference] if sample else None,
                method="global" if data is None and not gradient else "global+local",
                workers=workers,
                progress=progress,
            )
            gain_error = None
            if sample is not None and not (data is None and gradient):
                gain_error = float(np.abs(result.model.global_fit.gains * sample.gains - 1).max())
            truth_error = None
            if sample:
                truth_error = np.stack(
                    [_truth_error(_asset_paths(items), sample), _truth_error(_asset_paths(result.items), sample)]
                )
            import s3fs

            from stacrrn.report import build_report

            # this run's outputs and report replace an earlier demo's, never sit beside them
            with tempfile.TemporaryDirectory(prefix=".stacrrn-demo-", dir=folder) as tmp:
                s3fs.S3FileSystem().get(f"{BUCKET}/normalized/", f"{tmp}/normalized", recursive=True)
                report_html = build_report(result.collection_href, Path(tmp) / "report", rgb=rgb).html
                mirror = _replace_folder(Path(tmp) / "normalized", folder / "normalized")
                report_dir = _replace_folder(Path(tmp) / "report", folder / "report")
            report = report_dir / report_html.relative_to(Path(tmp) / "report")
            return DemoResult(result, api.url, s3.endpoint, mirror, sample, gain_error, truth_error, report)
