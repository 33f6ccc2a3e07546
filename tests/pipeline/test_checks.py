"""Upfront checks of a run's inputs: data types, nodata values, the overlap graph."""

from __future__ import annotations

import pytest

from stacrrn.errors import DataTypeError, DisconnectedError, NodataError
from stacrrn.io.raster import RasterInfo
from stacrrn.pipeline.checks import check_connected, check_nodata, check_rasters, footprint_pairs
from stacrrn.types import Box


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
