"""The overlap pass: on by default for mosaics, off for time series, exact when it runs."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import rasterio

from stacrrn import match
from stacrrn.pipeline.passes.overlap_metrics import pixel_rise_warnings
from stacrrn.samples import write_sample_mosaic
from tests.conftest import BAHAMAS, needs_shared


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    return write_sample_mosaic(tmp_path_factory.mktemp("scenes"), tiles=2, tile_size=128, overlap=32)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mosaic):
    """Four dates of one place: every pixel lies in three pairs."""
    tmp = tmp_path_factory.mktemp("stack")
    with rasterio.open(mosaic.paths[0]) as src:
        data, profile = src.read().astype(np.float64), src.profile
    paths = []
    for k, gain in enumerate((1.0, 1.1, 0.9, 1.2)):
        paths.append(tmp / f"date{k}.tif")
        with rasterio.open(paths[-1], "w", **profile) as dst:
            dst.write(np.clip(np.rint(data * gain), 1, 65535).astype(profile["dtype"]))
    return paths


def test_mosaic_compares_pixels_by_default(mosaic, tmp_path):
    q = match(mosaic.paths, tmp_path, method="global").model.quality
    pixels = q["overlap_pixels"]
    assert pixels["before"]["pixels"] == [sum(p["used_pixels"] for p in q["pairs"])] * 4
    assert max(pixels["after"]["mae"]) < 0.05 * min(pixels["before"]["mae"])


def test_time_series_skips_it_unless_asked(stack, tmp_path):
    q = match(stack, tmp_path / "auto", method="global", references=["date0"]).model.quality
    assert "overlap_pixels" not in q  # 6 pairs x 128^2 overlap pixels > 4 x 128^2 image pixels
    asked = match(stack, tmp_path / "asked", method="global", references=["date0"], overlap_pixels=True)
    pixels = asked.model.quality["overlap_pixels"]
    assert pixels["before"]["pixels"] == [6 * 128 * 128] * 4
    # the dates differ by gains only: after the model they agree to the rounding of the inputs
    assert max(pixels["after"]["mae"]) < 1.0 < min(pixels["before"]["mae"])
    skipped = match(stack[:2], tmp_path / "off", method="global", overlap_pixels=False)  # 2 dates: on by default
    assert "overlap_pixels" not in skipped.model.quality


def test_a_pixelwise_rise_next_to_a_block_mean_fall_is_explained_with_both_numbers(stack, tmp_path):
    model = match(stack, tmp_path, method="global", references=["date0"], overlap_pixels=True).model
    assert pixel_rise_warnings(model) == []  # gains only: every metric falls
    q = copy.deepcopy(model.quality)
    before = q["overlap_pixels"]["before"]["rmse"][1]
    q["overlap_pixels"]["after"]["rmse"][1] = 1.5 * before  # as clouds left in the overlaps would
    risen = dataclasses.replace(model, quality=q)
    (line,) = pixel_rise_warnings(risen, ["b1", "green", "b3", "b4"])
    assert line.startswith("band green: pixelwise overlap RMSE rose") and f"{1.5 * before:.4g}" in line
    blocks = q["before"]["block_mean_diff"][1], q["after"]["block_mean_diff"][1]
    assert f"{blocks[0]:.4g} -> {blocks[1]:.4g}" in line
    q["after"]["block_mean_diff"][1] = q["before"]["block_mean_diff"][1]  # block means no better: no excuse
    assert pixel_rise_warnings(dataclasses.replace(model, quality=q)) == []


@needs_shared
def test_identical_overlaps_give_no_warning(tmp_path):
    # the Bahamas quadrants cut from one scene: every overlap difference is exactly 0
    result = match([str(p) for p in BAHAMAS], tmp_path)
    assert result.model.quality["before"]["block_mean_diff"] == [0.0, 0.0, 0.0]
    assert result.warnings == []
