"""Planning over STAC items: the odc-stac reader sees exactly what the local reader sees."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from stacrrn.errors import ParameterError
from stacrrn.io.stac import Search, search_items
from stacrrn.pipeline.inputs.plan import make_plan
from stacrrn.pipeline.inputs.stac_inputs import open_assets
from stacrrn.pipeline.loading.stac_plan import _per_asset, load_items, make_stac_plan, pair_graph
from stacrrn.pipeline.outputs.catalog import catalog_rasters
from stacrrn.pipeline.passes.statistics import compute_statistics
from tests.conftest import S2_TILES, needs_shared, write_raster


@needs_shared
def test_odc_stac_statistics_equal_local_statistics(tmp_path):
    """Items in a local static catalog (multi-band and split assets): same grid, footprints, moments."""
    tiles = S2_TILES[:6]
    for split in (False, True):
        folder = tmp_path / f"cat-{split}"
        catalog_rasters(tiles, str(folder), "s2", split_bands=split)
        items = search_items(Search(catalog=str(folder / "collection.json")))
        names = ["b1", "b3", "b5"] if split else ["image.1", "image.3", "image.5"]
        plan = make_stac_plan(open_assets(items, names), chunk_size=128)
        local = make_plan(tiles, [1, 3, 5], chunk_size=200)
        assert plan.grid == local.grid and plan.footprints == local.footprints
        a, b = compute_statistics(plan, 2), compute_statistics(local, 1)
        assert [m.n for m in a.images] == [m.n for m in b.images]
        for ma, mb in zip(a.images, b.images, strict=True):
            np.testing.assert_allclose(ma.mean, mb.mean, rtol=1e-12)
            np.testing.assert_allclose(ma.m2, mb.m2, rtol=1e-9)
        assert sorted(a.pairs) == sorted(b.pairs)
        for key, pm in a.pairs.items():
            assert pm.n == b.pairs[key].n
            np.testing.assert_allclose(pm.c_ij, b.pairs[key].c_ij, rtol=1e-9)
    # the catalogued items themselves are valid STAC with checksums of the files they point at
    item = json.loads((tmp_path / "cat-True" / items[0].id / f"{items[0].id}.json").read_text())
    assert item["assets"]["b1"]["file:checksum"].startswith("1220")


@needs_shared
def test_multi_band_assets_are_read_per_asset_with_odc_stacs_values(tmp_path):
    """One 3-band asset is read in one rasterio call per chunk; odc-stac on split assets reads the same."""
    plans = []
    for split in (False, True):
        catalog_rasters(S2_TILES[:3], str(tmp_path / f"cat-{split}"), "s2", split_bands=split)
        items = search_items(Search(catalog=str(tmp_path / f"cat-{split}" / "collection.json")))
        inputs = open_assets(items, ["b1", "b3", "b5"] if split else ["image.1", "image.3", "image.5"])
        assert _per_asset(inputs) is not split
        plans.append(make_stac_plan(inputs, chunk_size=256))
    per_asset, odc = plans
    compared = 0
    for box in per_asset.chunks[:4]:
        images = per_asset.images_in(box)
        a, b = per_asset.read_chunk(box, images), odc.read_chunk(box, images)
        for i in images:
            assert a[i][1].any() and np.array_equal(a[i][1], b[i][1]) and np.array_equal(a[i][0], b[i][0])
            compared += 1
    assert compared >= 4


@needs_shared
def test_load_items_is_lazy_and_matches_the_files(tmp_path):
    import rasterio

    catalog_rasters(S2_TILES[:2], str(tmp_path), "s2", band_names=[f"band{k}" for k in range(1, 11)])
    items = search_items(Search(catalog=str(tmp_path / "collection.json")))
    ds = load_items(items, ["band2"], chunk_size=256)
    assert list(ds.data_vars) == ["band2"]  # named as asked
    assert ds["band2"].chunks is not None and ds.sizes["time"] == 2
    first = ds["band2"].isel(time=0).values
    with rasterio.open(S2_TILES[0]) as src:
        direct = src.read(2).astype(float)
    valid = np.isfinite(first)
    assert valid.sum() == direct.size and np.array_equal(np.sort(first[valid]), np.sort(direct.ravel()))


def test_load_items_gives_nan_for_nodata_and_outside_an_item(tmp_path):
    from affine import Affine

    data = np.full((1, 32, 32), 500, np.uint16)
    data[0, :4] = 0  # nodata rows
    a = write_raster(tmp_path / "a.tif", data, Affine(10, 0, 500000, 0, -10, 4500000), nodata=0)
    b = write_raster(tmp_path / "b.tif", data, Affine(10, 0, 500160, 0, -10, 4500000), nodata=0)
    catalog_rasters([a, b], str(tmp_path / "cat"), "c", band_names=["red"])
    ds = load_items(search_items(Search(catalog=str(tmp_path / "cat" / "collection.json"))), ["red"])
    first = ds["red"].isel(time=0).values
    assert first.shape == (32, 48)
    assert np.isnan(first[:4]).all() and np.isnan(first[:, 32:]).all()  # nodata rows, outside the item
    assert (first[4:, :32] == 500).all()


def test_pair_graph():
    assert pair_graph(5, "mosaic", 1) is None
    assert pair_graph(5, "timeseries", None) is None
    assert pair_graph(5, "timeseries", 4) is None
    assert pair_graph(4, "timeseries", 1) == {(0, 1), (1, 2), (2, 3)}
    assert pair_graph(5, "timeseries", 2) == {(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)}
    assert pair_graph(4, "timeseries", None, [2]) == {(0, 2), (1, 2), (2, 3)}
    assert pair_graph(5, "timeseries", 1, [0]) == {(0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (0, 3), (0, 4)}
    with pytest.raises(ParameterError, match="--star"):
        pair_graph(3, "timeseries", None, [])
    with pytest.raises(ParameterError, match="--star"):
        pair_graph(3, "mosaic", None, [0])
    with pytest.raises(Exception, match="--mode"):
        pair_graph(3, "stack", None)
    with pytest.raises(Exception, match="--neighbours"):
        pair_graph(3, "timeseries", 0)


@pytest.mark.parametrize("kind", ["nodata", "mask"])
def test_nodata_and_masks_are_not_counted(tmp_path, kind):
    """Source nodata (odc-stac keeps it as a value in float loads) and internal masks stay invalid."""
    import rasterio

    from tests.conftest import write_raster

    paths = []
    for k in range(2):
        data = np.full((2, 64, 64), 500 + 10 * k, "uint16")
        data[:, :10, :10] = 0
        t = rasterio.Affine(10, 0, 500000 + 320 * k, 0, -10, 4500000)
        path = write_raster(tmp_path / f"{kind}{k}.tif", data, t, nodata=0 if kind == "nodata" else None)
        if kind == "mask":
            with rasterio.open(path, "r+") as dst:
                mask = np.full((64, 64), 255, "uint8")
                mask[:, :20] = 0
                dst.write_mask(mask)
        paths.append(path)
    catalog_rasters(paths, str(tmp_path / "cat"), "c")
    items = search_items(Search(catalog=str(tmp_path / "cat" / "collection.json")))
    stac = compute_statistics(make_stac_plan(open_assets(items), chunk_size=32))
    local = compute_statistics(make_plan(paths, chunk_size=32))
    assert [m.n for m in stac.images] == [m.n for m in local.images] == [4096 - (100 if kind == "nodata" else 1280)] * 2
    assert stac.pairs[(0, 1)].n == local.pairs[(0, 1)].n


def test_items_with_different_nodata_values_are_each_masked_by_their_own(tmp_path):
    """One item says nodata 0, the other 65535: the odc-stac reader masks both, as local reads do.

    odc-stac loads each band with the first item's nodata and writes it over every item's own.
    """
    from stacrrn.samples import write_sample_mosaic

    tiles = write_sample_mosaic(tmp_path / "tiles", tiles=2, tile_size=64, overlap=24).paths[:2]
    with rasterio.open(tiles[1]) as src:
        profile, data = src.profile, src.read()
    data[data == 0] = 65535
    data[:, 10:30, 0:20] = 65535  # a hole in the overlap, in the second item's nodata
    profile.update(nodata=65535)
    other = tmp_path / "other.tif"
    with rasterio.open(other, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(tiles[0], "r+") as dst:  # and a hole in the first item's nodata, 0
        dst.write(np.zeros((dst.count, 20, 10), "uint16"), window=rasterio.windows.Window(50, 30, 10, 20))
    catalog_rasters([tiles[0], other], str(tmp_path / "cat"), "t", split_bands=True)
    items = search_items(Search(catalog=str(tmp_path / "cat" / "collection.json")))
    inputs = open_assets(items, ["b1", "b2"])
    assert [it.id for it in items] == ["other", "tile_00"]  # sorted by date, then id
    assert not _per_asset(inputs) and [h["b1"].nodata for h in inputs.assets] == [65535.0, 0.0]
    odc = compute_statistics(make_stac_plan(inputs, chunk_size=32), 1)
    local = compute_statistics(make_plan([other, tiles[0]], [1, 2], chunk_size=32), 1)
    assert [m.n for m in odc.images] == [m.n for m in local.images]
    (key,) = local.pairs
    assert odc.pairs[key].n == local.pairs[key].n
    np.testing.assert_allclose(odc.images[0].mean, local.images[0].mean, rtol=1e-12)
