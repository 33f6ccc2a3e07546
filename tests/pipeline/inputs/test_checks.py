"""Upfront checks of a run's inputs: data types, nodata values, the overlap graph."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from stacrrn import compute_statistics, make_plan
from stacrrn.errors import DataTypeError, DisconnectedError, NodataError
from stacrrn.io.raster import RasterInfo
from stacrrn.pipeline.inputs.checks import check_connected, check_nodata, check_rasters, footprint_pairs
from stacrrn.pipeline.passes.solve import sparse_reference_warnings
from stacrrn.types import Box
from tests.conftest import write_raster


def info(name: str, dtype: str = "uint16", nodata: float | None = 0) -> RasterInfo:
    return RasterInfo(f"/x/{name}.tif", name, 4, dtype, nodata, "EPSG:32633", (10, 0, 0, 0, -10, 0), 8, 8)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("uint16", -9999), ("uint16", 70000), ("uint8", 0.5), ("int16", float("nan")), ("int32", float("inf"))],
)
def test_nodata_the_type_cannot_hold_is_refused(dtype, nodata):
    with pytest.raises(NodataError, match="is not a"):
        check_nodata(info("a", dtype, nodata))


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint16", 65535), ("int16", -32768), ("float32", float("nan")), ("float32", -9999.5)]
)
def test_nodata_the_type_holds_passes(dtype, nodata):
    check_nodata(info("a", dtype, nodata))


def test_types_must_agree_per_band_label_not_across_labels():
    check_rasters([("red", info("a")), ("red", info("b")), ("ndvi", info("c", "float32", None))])
    with pytest.raises(DataTypeError, match=r"for red: /x/a\.tif is uint16, /x/b\.tif is int16"):
        check_rasters([("red", info("a")), ("red", info("b", "int16"))])
    with pytest.raises(DataTypeError, match="int64"):
        check_rasters([("", info("a", "int64", None))])


def test_groups_need_a_reference_each_unless_there_is_one_group():
    names = ["a", "b", "c", "d", "e"]
    check_connected(names, [(0, 1), (1, 2)])  # e, d isolated: kept unchanged, not an error
    with pytest.raises(DisconnectedError, match=r"2 groups .*\(a, b \| c, d\).*e\.g\. a, c"):
        check_connected(names, [(0, 1), (2, 3)])
    with pytest.raises(DisconnectedError, match=r"e\.g\. c\)"):
        check_connected(names, [(0, 1), (2, 3)], references=[0])
    check_connected(names, [(0, 1), (2, 3)], references=[1, 3])


def test_footprint_pairs_share_a_pixel():
    boxes = [Box(0, 0, 10, 10), Box(9, 9, 20, 20), Box(10, 10, 30, 30), Box(40, 40, 50, 50)]
    assert footprint_pairs(boxes) == {(0, 1), (1, 2)}


def test_sparse_references_are_warned_about_per_footprint(tmp_path):
    """Four 40 x 40 rasters shifted by 20 columns (common grid 40 x 100): shares are of each footprint."""
    rng = np.random.default_rng(0)
    valid_columns = {"full": 40, "half": 20, "sparse": 12, "sparse_other": 4}  # of 40: 100 %, 50 %, 30 %, 10 %
    paths = []
    for k, (name, columns) in enumerate(valid_columns.items()):
        data = rng.integers(100, 5000, (2, 40, 40)).astype("uint16")
        data[:, :, columns:] = 0
        transform = rasterio.Affine(10.0, 0, 500000.0 + 200.0 * k, 0, -10.0, 4600000.0)
        paths.append(write_raster(tmp_path / f"{name}.tif", data, transform, nodata=0))
    plan = make_plan(paths, chunk_size=32)
    assert plan.names == list(valid_columns)
    assert (plan.grid.width, plan.grid.height) == (100, 40)
    assert [(b.height, b.width) for b in plan.footprints] == [(40, 40)] * 4
    stats = compute_statistics(plan)
    assert [m.n for m in stats.images] == [1600, 800, 480, 160]
    # a full reference covers only 40 % of the common grid: it is measured against its own footprint
    assert sparse_reference_warnings(stats, plan, [0]) == []
    assert sparse_reference_warnings(stats, plan, [1]) == []  # 50 %: not below the threshold
    assert sparse_reference_warnings(stats, plan, [0, 1, 2]) == [
        "reference sparse has valid pixels on only 30 % of its footprint (nodata, or masked as cloud); "
        "the gains tied to it rest on what is left: prefer a fuller reference"
    ]
    assert [line.split(" has")[0] for line in sparse_reference_warnings(stats, plan, [3, 2])] == [
        "reference sparse_other",
        "reference sparse",
    ]
