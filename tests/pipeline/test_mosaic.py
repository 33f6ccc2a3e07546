"""Seamless mosaics: seam quality before/after normalization and feathering, outputs, STAC item."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely

from stacrrn.pipeline.match import match
from stacrrn.pipeline.mosaic import mosaic, mosaic_sources
from tests.conftest import S2_TILES, distort_tiles, needs_shared, tile_grid_coords, validate_stac

BANDS = [1, 3, 5, 8]


@pytest.fixture(scope="module")
def distorted(tmp_path_factory):
    """The 16 Sentinel-2 tiles with per-tile gains/offsets and a planar gradient, and their normalization."""
    tmp = tmp_path_factory.mktemp("mosaic")
    rng = np.random.default_rng(11)
    gains = rng.uniform(0.8, 1.2, (16, 4))
    offsets = rng.uniform(-60, 60, (16, 4))
    gains[5], offsets[5] = 1, 0

    def distortion(k, truth):
        x, y = tile_grid_coords(truth.shape[1:])
        ramp = 1 + 0.08 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)) if k != 5 else 1
        return truth * ramp * gains[k][:, None, None] + offsets[k][:, None, None]

    (tmp / "raw").mkdir()
    paths, _ = distort_tiles(tmp / "raw", S2_TILES, BANDS, distortion, dtype="uint16")
    normalized = match(paths, tmp / "normalized", references=["t05"], method="global+local", workers=2)
    return paths, [o.path for o in normalized.outputs], tmp


@needs_shared
def test_normalized_and_feathered_mosaic_has_the_least_visible_seams(distorted):
    raw, normalized, tmp = distorted
    figures = {}
    for label, paths in (("raw", raw), ("normalized", normalized)):
        for feather in (0.0, 24.0):
            result = mosaic(mosaic_sources([str(p) for p in paths]), str(tmp / f"{label}-{feather:g}"), feather=feather)
            figures[(label, feather)] = result.metrics
    print("seam jump / gradient ratio per band (mean over bands):")
    for key, m in figures.items():
        print(f"  {key[0]:>10} feather {key[1]:>4g}: jump {np.round(m.jump, 1)} ratio {np.round(m.gradient_ratio, 2)}")
    jump = {k: float(np.mean(m.jump)) for k, m in figures.items()}
    ratio = {k: float(np.mean(m.gradient_ratio)) for k, m in figures.items()}
    best = ("normalized", 24.0)
    assert jump[best] == min(jump.values()) and ratio[best] == min(ratio.values())
    assert jump[best] < 0.5 * jump[("raw", 0.0)]
    assert jump[("normalized", 0.0)] < jump[("raw", 0.0)] and jump[("raw", 24.0)] < jump[("raw", 0.0)]


@needs_shared
def test_mosaic_outputs_partition_and_item(distorted):
    _, normalized, tmp = distorted
    out = tmp / "outputs"
    sources = mosaic_sources([str(p) for p in normalized])
    result = mosaic(sources, str(out), feather=16, priority={"t00": 2.0})
    with rasterio.open(out / "mosaic.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and src.overviews(1)
        assert src.count == 4 and src.dtypes[0] == "uint16"
        mosaic_px = src.read(1)
        transform = src.transform
    # the seam polygons partition the union of footprints: no gap, no double coverage
    seams = json.loads((out / "seamlines.geojson").read_text())["features"]
    assert len(seams) == 16
    regions = result.seams.regions
    union = shapely.union_all(result.seams.footprints)
    total = sum(r.area for r in regions)
    pixel = float(np.prod(result.seams.grid.resolution))
    assert abs(shapely.union_all(regions).area - total) < 1e-6 * total  # no overlaps between regions
    assert abs(total - union.area) < pixel * len(regions)  # covers the union within a pixel per seam
    for region, fp in zip(regions, result.seams.footprints, strict=True):
        assert region.difference(fp.buffer(max(result.seams.grid.resolution))).area < pixel
    # the priority image wins more than its equal-sized neighbour
    areas = {f["properties"]["image"]: f["properties"]["area"] for f in seams}
    assert areas["t00"] > areas["t03"]
    item = result.item
    assert not validate_stac(item)
    assert item["properties"]["start_datetime"] <= item["properties"]["end_datetime"]
    assert {"mosaic", "seamlines", "seamlines-parquet", "footprints"} <= set(item["assets"])
    assert item["properties"]["rrn:mosaic"]["seam_pairs"] > 0
    assert transform.a == 10.0 and (mosaic_px > 0).mean() > 0.99  # the union is filled
