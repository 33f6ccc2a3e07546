"""A time series of more dates than a chunk holds at once, with every pair (issue 23).

Over :data:`~stacrrn.pipeline.passes.statistics.MAX_CHUNK_IMAGES` (6) dates a chunk is streamed, and
with all pairs it goes block by block: a few dates held as rows, the later ones loaded in turn
as columns. Co-registered dates cover the same pixels, so their pairs reuse the images' raw
sums; a column date's sums were never computed (its image moments come from its own row
block), and 7 dates failed with a ``KeyError`` in ``PairMoments.joint``.

The dates here are one real Landsat crop times known per-band gains, so the global step must
recover the gains.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows

import stacrrn.pipeline.passes.statistics as pipeline_statistics
from stacrrn.core.statistics import chunk_statistics, streamed_chunk_statistics
from stacrrn.pipeline.inputs.plan import make_plan
from stacrrn.pipeline.match import match
from stacrrn.pipeline.passes.statistics import MAX_CHUNK_IMAGES, compute_statistics
from stacrrn.types import BlockGrid, Box
from tests.conftest import SHARED

SOURCE = SHARED / "landsat_hawaii_timeseries" / "Landsat_20240302.tif"  # a clear date
BANDS = [3, 4, 5]  # green, red, NIR: spreads of 1000-4000 DN on the crop
SIZE = 128
COLLAR = 5  # rows of nodata shared by every date: the pairs' pixels are the images' own, not the whole chunk

needs_landsat = pytest.mark.skipif(not SOURCE.exists(), reason="../shared/data/landsat_hawaii_timeseries is absent")


def base_crop() -> tuple[np.ndarray, rasterio.Affine, rasterio.crs.CRS]:
    with rasterio.open(SOURCE) as src:
        window = rasterio.windows.Window(0, 0, SIZE, SIZE)
        data = src.read(BANDS, window=window)
        transform, crs = src.window_transform(window), src.crs
    data[:, :COLLAR] = 0
    return data, transform, crs


def injected_gains(n: int) -> np.ndarray:
    """Gains ``(dates, bands)`` in [0.6, 2.0]; date 0 keeps 1 (gains are relative to it)."""
    gains = np.random.default_rng(23).uniform(0.6, 2.0, (n, len(BANDS)))
    gains[0] = 1.0
    return gains


def write_dates(folder: Path, n: int) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """``n`` co-registered uint16 dates ``round(gain * base)``, nodata 0 where the base is; paths, gains, base."""
    base, transform, crs = base_crop()
    gains = injected_gains(n)
    assert base.max() * gains.max() < 65535  # no date saturates
    paths = []
    for k in range(n):
        scaled = np.rint(base * gains[k][:, None, None])
        values = np.where(base > 0, np.maximum(scaled, 1), 0).astype(np.uint16)
        path = folder / f"d{k:02d}.tif"
        profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": len(BANDS), "dtype": "uint16"}
        with rasterio.open(path, "w", crs=crs, transform=transform, nodata=0, **profile) as dst:
            dst.write(values)
        paths.append(path)
    return paths, gains, base


TOLERANCE = 1e-3
"""Relative error allowed on a recovered gain.

Date k holds ``y = g x + e`` with the same pixels ``x`` and a rounding error ``|e| <= 0.5``
(variance 1/12, unrelated to ``x``). The spread estimator compares standard deviations:
``sd(y)**2 = g**2 var(x) + 2 g cov(x, e) + 1/12``, so ``sd(y) / (g sd(x))`` is off by a bias
``1 / (24 g**2 var(x))`` and a sampling term ``cov(x, e) / (g var(x))`` of standard error
``sqrt(1/12) / (g sd(x) sqrt(n))``. A gain relative to date 0 adds two such errors, and the
joint solve averages all pairs, so it cannot do worse than a few times that.
:func:`expected_gain_error` evaluates it on the crop (about 1e-5); the tolerance keeps a margin of
at least 20 over it.
"""


def expected_gain_error(base: np.ndarray, gains: np.ndarray) -> float:
    """Twice the bias plus four standard errors of one date's spread, for the worst band and gain."""
    valid = base[0] > 0
    sd = min(float(band[valid].std()) for band in base.astype(np.float64))
    g, n = float(gains.min()), int(valid.sum())
    per_date = 1 / (24 * g * g * sd * sd) + 4 * np.sqrt(1 / 12) / (g * sd * np.sqrt(n))
    return 2 * per_date


@needs_landsat
@pytest.mark.parametrize("n_dates", [7, 8, 20])
def test_all_pairs_of_many_dates_recover_the_injected_gains(tmp_path, n_dates):
    paths, gains, base = write_dates(tmp_path, n_dates)
    assert n_dates > MAX_CHUNK_IMAGES  # the chunk is streamed, block by block (all pairs)
    result = match(paths, tmp_path / "out", method="global")

    model = result.model
    assert model.method == "global" and model.local_fit is None
    assert model.global_fit.isolated == [] and model.global_fit.unfitted == []
    assert len(result.outputs) == n_dates
    expected = expected_gain_error(base, gains)
    assert expected < TOLERANCE / 20, expected  # the crop is spread enough for the bound to mean something
    a = model.global_fit.gains  # corrected = a * value + b, so a_k is proportional to 1 / g_k
    recovered = a[0] / a
    np.testing.assert_allclose(recovered, gains, rtol=TOLERANCE, atol=0)

    # every date comes out as the same picture: apart only by the rounding of inputs (0.5 a_k DN)
    # and of outputs (0.5 DN each), plus what the gain error makes of the brightest pixel
    with rasterio.open(result.outputs[0].path) as src:
        first = src.read().astype(np.float64)
    for k, out in enumerate(result.outputs):
        with rasterio.open(out.path) as src:
            corrected = src.read().astype(np.float64)
        bound = 0.5 * (a[k] + a[0]) + 1 + TOLERANCE * first.max(axis=(1, 2))
        assert (np.abs(corrected - first).max(axis=(1, 2)) <= bound).all(), k


@needs_landsat
def test_streamed_statistics_of_many_dates_equal_those_of_all_dates_at_once(tmp_path, monkeypatch):
    paths, _, _ = write_dates(tmp_path, 7)
    plan = make_plan(paths, chunk_size=64)  # four chunks, each meeting every date
    streamed = compute_statistics(plan).to_dict()
    monkeypatch.setattr(pipeline_statistics, "MAX_CHUNK_IMAGES", 7)  # every date held at once
    assert compute_statistics(plan).to_dict() == streamed


@pytest.mark.parametrize("max_images", [2, 4, 6])
def test_streamed_blocks_with_dates_over_the_same_pixels_equal_all_layers_at_once(max_images):
    """Blocks of dates whose pairs reuse their images' sums: whole chunk, a shared collar, or their own mask."""
    box, blocks = Box(8, 16, 32, 48), BlockGrid(64, 64, 10, 10)
    rng = np.random.default_rng(5)
    collar = np.ones((24, 32), dtype=bool)
    collar[:3] = False
    own = rng.random((24, 32)) > 0.3
    masks = [np.ones((24, 32), dtype=bool)] * 4 + [collar] * 4 + [own] + [collar] * 2
    layers = {i: (rng.normal(100 + i, 10, (2, 24, 32)).round(), valid) for i, valid in enumerate(masks)}
    expected = chunk_statistics(box, layers, blocks)
    got = streamed_chunk_statistics(box, range(len(layers)), layers.__getitem__, blocks, None, None, None, max_images)
    assert got.to_dict() == expected.to_dict()
    assert len(got.pairs) == len(layers) * (len(layers) - 1) // 2


@needs_landsat
def test_the_command_matches_seven_dates_without_a_traceback(tmp_path):
    paths, _, _ = write_dates(tmp_path, 7)
    command = [sys.executable, "-c", "from stacrrn.cli.app import main; main()", "match", *map(str, paths)]
    proc = subprocess.run(
        [*command, "--out", str(tmp_path / "out"), "--method", "global"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "stacrrn-model.json").exists()
