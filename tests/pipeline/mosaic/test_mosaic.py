"""Seamless mosaics: seam quality before/after normalization and feathering, outputs, STAC item."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
import shapely

from stacrrn.core.model import RRNModel
from stacrrn.core.seamlines import blend_weights
from stacrrn.errors import InputError
from stacrrn.pipeline.match import match
from stacrrn.pipeline.mosaic.mosaic import mosaic, mosaic_sources
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


def _blend_everywhere(plan, seams, box, width):
    """Reference blend: weights over every pixel of the chunk, each image's signed distance everywhere."""
    images = plan.images_in(box)
    layers = plan.read_chunk(box, images)
    out = np.zeros((len(plan.bands), box.height, box.width))
    if not images:
        return out, np.zeros((box.height, box.width), bool)
    signed = [seams.signed_at(i, plan.grid, box) for i in images]
    valid = [layers[i][1] for i in images]
    for w, i, v in zip(blend_weights(signed, valid, width), images, valid, strict=True):
        out += w * np.where(v, layers[i][0], 0.0)
    return out, np.logical_or.reduce(valid)


@needs_shared
@pytest.mark.parametrize("feather", [0.0, 24.0])
def test_blending_only_where_images_compete_gives_the_blend_of_every_pixel(distorted, feather):
    from stacrrn.pipeline.mosaic.mosaic import _blend_chunk
    from stacrrn.pipeline.mosaic.seams import compute_seams
    from stacrrn.types import Box

    sources = mosaic_sources([str(p) for p in distorted[0]])
    plan = sources.plan
    seams = compute_seams(sources.coarse, [1.0] * len(plan.names))
    kinds = set()
    for row in range(0, plan.grid.height, 96):  # chunks inside one image, across seams, at the edge
        for col in range(0, plan.grid.width, 96):
            box = Box(row, col, min(row + 96, plan.grid.height), min(col + 96, plan.grid.width))
            values, valid, sums = _blend_chunk(plan, seams, box, feather)
            expected, expected_valid = _blend_everywhere(plan, seams, box, feather)
            np.testing.assert_array_equal(valid, expected_valid)
            np.testing.assert_allclose(values[:, valid], expected[:, valid], rtol=1e-12, atol=1e-9)
            kinds.add((len(plan.images_in(box)), sums.seam_pairs > 0))
    assert {(1, False), (2, True), (4, True)} <= kinds


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
    derived = [ln["href"] for ln in item["links"] if ln["rel"] == "derived_from"]
    assert sorted(derived) == sorted(os.path.abspath(p) for p in normalized)
    assert item["properties"]["rrn:mosaic"]["seam_pairs"] > 0
    assert transform.a == 10.0 and (mosaic_px > 0).mean() > 0.99  # the union is filled


@needs_shared
def test_run_then_mosaic_from_stac_on_s3(s3, bucket, tmp_path):
    import datetime as dt

    import s3fs
    from rio_cogeo.cogeo import cog_validate

    from stacrrn.io.stac import Search, gdal_path
    from stacrrn.pipeline.mosaic.mosaic import item_priorities, mosaic_of_run
    from stacrrn.pipeline.outputs.catalog import catalog_rasters
    from stacrrn.pipeline.run import run
    from stacrrn.services import RustacAPI

    rng = np.random.default_rng(3)
    gains = rng.uniform(0.85, 1.15, (4, 4))
    gains[0] = 1
    tiles = [S2_TILES[k] for k in (0, 1, 4, 5)]
    paths, truths = distort_tiles(tmp_path, tiles, BANDS, lambda k, t: t * gains[k][:, None, None], dtype="float32")
    names = ["blue", "green", "red", "nir"]
    when = [dt.datetime(2021, 5, 27, 11, k, tzinfo=dt.UTC) for k in range(4)]
    coll, items = catalog_rasters(paths, f"s3://{bucket}/in", "s2", band_names=names, split_bands=True, datetimes=when)
    with RustacAPI(coll, items) as api:
        result = run(
            Search(stac=api.url, collections=("s2",)),
            f"s3://{bucket}/out",
            assets=names,
            references=["t00"],
            method="global",
        )
    priority = item_priorities(result.items, "date")
    assert priority["t03"] == 2.0 and priority["t00"] == 1.0
    made = mosaic_of_run(result.items, result.out, assets=names, feather=16, priority=priority)
    item = json.loads(s3fs.S3FileSystem().cat(made.item_href.removeprefix("s3://")))
    assert not validate_stac(item)
    sources = sorted(ln["href"] for ln in item["links"] if ln["rel"] == "derived_from")
    assert sources == sorted(f"s3://{bucket}/out/{k}/{k}.json" for k in ("t00", "t01", "t02", "t03"))
    href = gdal_path(item["assets"]["mosaic"]["href"])
    valid, errors, _ = cog_validate(href, quiet=True)
    assert valid, errors
    with rasterio.open(href) as src:
        mosaic_px = src.read().astype(np.float64)
        t = src.transform
    # the normalized mosaic matches the undistorted tiles wherever it is valid (tile 0 is the reference)
    with rasterio.open(S2_TILES[0]) as ref:
        r0 = round((ref.transform.f - t.f) / t.e)
        c0 = round((ref.transform.c - t.c) / t.a)
        window = mosaic_px[:, r0 : r0 + ref.height, c0 : c0 + ref.width]
    rel = np.sqrt(((window - truths[0]) ** 2).mean(axis=(1, 2))) / truths[0].std(axis=(1, 2))
    print(f"mosaic vs truth over tile 0, relative RMSE per band: {np.round(rel, 5)}")
    assert rel.max() < 1e-3
    assert not s3fs.S3FileSystem().exists(f"{bucket}/out/mosaic/.stacrrn-tmp")


@needs_shared
def test_least_cost_seams_avoid_a_building_that_only_one_image_shows(distorted, tmp_path):
    _, normalized, _ = distorted
    left, right = (rasterio.open(normalized[k]) for k in (5, 6))
    with left, right:
        overlap_x = (right.bounds.left + left.bounds.right) / 2  # middle of the overlap strip: the centre seam
        col = round((overlap_x - right.bounds.left) / right.res[0])
        data = right.read()
        profile = right.profile
    building = (slice(100, 170), slice(col - 10, col + 10))
    data[(slice(None), *building)] += 3000  # a new bright roof, seen only in this image
    changed = [*normalized]
    changed[6] = tmp_path / "t06_roof.tif"
    with rasterio.open(changed[6], "w", **profile) as dst:
        dst.write(data)
    results = {}
    for mode in ("center", "least-cost"):
        sources = mosaic_sources([str(p) for p in changed])
        results[mode] = mosaic(sources, str(tmp_path / mode), feather=0, seams=mode)
    jumps = {m: float(np.mean(r.metrics.jump)) for m, r in results.items()}
    print(f"mean seam jump with the roof on the seam: {jumps}")
    assert jumps["least-cost"] < 0.7 * jumps["center"]
    with rasterio.open(changed[6]) as src:
        x0, y0 = src.xy(building[0].start, building[1].start, offset="ul")
        x1, y1 = src.xy(building[0].stop - 1, building[1].stop - 1, offset="lr")
    for mode, shown in (("center", "cut"), ("least-cost", "whole")):
        with rasterio.open(tmp_path / mode / "mosaic.tif") as src:
            window = src.window(x0, y1, x1, y0)
            roof = src.read(1, window=window).astype(float)
        bright = roof > np.median(roof) + 1000
        whole = bright.all() or not bright.any()
        assert whole == (shown == "whole"), (mode, bright.mean())


@needs_shared
def test_real_seasonal_change_montreal_seam_quality(tmp_path):
    """Landsat 8 over Montreal, snow vs summer: what normalization, PIFs and seams can and cannot do."""
    from stacrrn.options import PifOptions
    from tests.conftest import SHARED

    paths = sorted((SHARED / "landsat8_montreal_seasons").glob("cog*.tif"))
    variants = {
        "raw": paths,
        "normalized": [o.path for o in match(paths, tmp_path / "n", method="global+local").outputs],
        "normalized+pif": [o.path for o in match(paths, tmp_path / "p", pif=PifOptions.parse(["imad"])).outputs],
    }
    jump = {}
    for label, inputs in variants.items():
        for seams in ("center", "least-cost"):
            for feather in (0.0, 32.0):
                result = mosaic(
                    mosaic_sources([str(p) for p in inputs]),
                    str(tmp_path / f"{label}-{seams}-{feather:g}"),
                    feather=feather,
                    seams=seams,
                )
                jump[(label, seams, feather)] = float(np.mean(result.metrics.jump))
                print(
                    f"{label:>15} {seams:>10} feather {feather:>3g}: jump {np.round(result.metrics.jump, 1)} "
                    f"ratio {np.round(result.metrics.gradient_ratio, 2)}"
                )
    for seams in ("center", "least-cost"):
        # real change: normalized on IR-MAD PIFs and feathered is the smoothest for either seam placement
        best = min((k for k in jump if k[1] == seams), key=jump.__getitem__)
        assert best[0].startswith("normalized") and best[2] == 32.0, (seams, best)
        assert jump[("normalized+pif", seams, 32.0)] < jump[("raw", seams, 32.0)]
        for label in variants:  # feathering always helps
            assert jump[(label, seams, 32.0)] < jump[(label, seams, 0.0)]
    # measured, not asserted: normalized without PIFs, centre seams, feathered (778) is above raw
    # feathered (733): the snow against summer drives a model fitted on all pixels


@needs_shared
def test_mosaic_normalized_while_blending_equals_the_mosaic_of_corrected_images(distorted):
    """A model applied in the mosaic's reader gives the mosaic of the corrected COGs, with no COG per image."""
    raw, normalized, tmp = distorted
    model = RRNModel.from_json((tmp / "normalized" / "stacrrn-model.json").read_text())
    fused = mosaic(mosaic_sources([str(p) for p in raw], model=model), str(tmp / "fused"))
    two_step = mosaic(mosaic_sources([str(p) for p in normalized]), str(tmp / "two-step"))
    assert np.array_equal(fused.seams.labels, two_step.seams.labels)
    with rasterio.open(fused.hrefs["mosaic"]) as a, rasterio.open(two_step.hrefs["mosaic"]) as b:
        x, y = a.read().astype(np.int64), b.read().astype(np.int64)
    assert x.shape == y.shape and np.array_equal(x == 0, y == 0)
    assert np.array_equal(x, y)
    assert fused.item["properties"]["rrn:mosaic"]["model"] == model.digest()
    assert "model" not in two_step.item["properties"]["rrn:mosaic"]
    # seam metrics are taken before rounding: unrounded corrected values against rounded ones
    np.testing.assert_allclose(fused.metrics.jump, two_step.metrics.jump, rtol=0.01)
    stranger = tmp / "x99.tif"
    stranger.symlink_to(raw[6])
    with pytest.raises(InputError, match="x99 not in the model"):
        mosaic_sources([str(p) for p in raw[:3]] + [str(stranger)], model=model)


@needs_shared
@pytest.mark.parametrize("feather", [0.0, 16.0])
def test_a_chunk_under_many_images_is_blended_in_strips_to_the_same_pixels(tmp_path, monkeypatch, feather):
    """A stack of 9 images over one place: strips hold at most a chunk of 6 images' pixels at once."""
    import stacrrn.pipeline.mosaic.mosaic as mosaic_module
    from stacrrn.pipeline.inputs.plan import CHUNK_IMAGES, Plan
    from stacrrn.pipeline.mosaic.seams import compute_seams

    with rasterio.open(S2_TILES[5]) as src:
        truth, profile = src.read([1, 3]), src.profile
    paths = []
    for k in range(9):  # each date misses another band of rows (clouds cut out): owners differ
        values = np.rint(truth * (0.8 + 0.05 * k)).astype("uint16")
        values[:, 20 * k : 20 * k + 30] = 0
        path = tmp_path / f"d{k}.tif"
        with rasterio.open(path, "w", **{**profile, "count": 2, "nodata": 0}) as dst:
            dst.write(values)
        paths.append(str(path))
    sources = mosaic_sources(paths)
    seams = compute_seams(sources.coarse, [1.0] * 9)
    box = sources.plan.grid.box
    reads: list[int] = []
    reader = sources.plan.read_chunk

    def counted(b, images):
        reads.append(b.height * b.width * len(images))
        return reader(b, images)

    plan = Plan(**{**sources.plan.__dict__, "read_chunk": counted})
    values, valid, _ = mosaic_module._blend_chunk(plan, seams, box, feather)
    assert max(reads) <= CHUNK_IMAGES * box.height * box.width and len(reads) > 1
    monkeypatch.setattr(mosaic_module, "CHUNK_IMAGES", 9)  # every image held at once
    reads.clear()
    whole, whole_valid, _ = mosaic_module._blend_chunk(plan, seams, box, feather)
    assert reads == [9 * box.height * box.width]
    assert valid.all()  # every pixel is valid in some date
    np.testing.assert_array_equal(valid, whole_valid)
    np.testing.assert_array_equal(values, whole)
