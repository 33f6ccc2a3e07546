"""Vector masks: GeoJSON, GeoPackage and GeoParquet in another CRS rasterize onto the common grid."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio.raw
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from stacrrn.errors import InputError
from stacrrn.io.vectors import VectorMask
from stacrrn.types import Box, Grid

GRID = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), 200, 150)
UTM_POLYGON = shapely.Polygon([(500300, 4999200), (501200, 4999300), (501000, 4998700), (500400, 4998800)])


def in_wgs84() -> shapely.Polygon:
    t = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    return shapely.transform(UTM_POLYGON, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def write_all(tmp_path):
    geom = in_wgs84()
    geojson = tmp_path / "pif.geojson"
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(geom)}],
            }
        )
    )
    gpkg = tmp_path / "pif.gpkg"
    pyogrio.raw.write(
        gpkg,
        np.array([shapely.to_wkb(geom)], dtype=object),
        [],
        [],
        crs="EPSG:4326",
        geometry_type="Polygon",
        driver="GPKG",
    )
    parquet = tmp_path / "pif.parquet"
    meta = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "crs": "EPSG:4326"}},
    }
    table = pa.table({"geometry": [shapely.to_wkb(geom)]}).replace_schema_metadata({"geo": json.dumps(meta)})
    pq.write_table(table, parquet)
    return [geojson, gpkg, parquet]


def test_polygons_in_any_format_and_crs_rasterize_on_pixel_centres(tmp_path):
    rows, cols = np.mgrid[0:150, 0:200]
    centres = shapely.points(500000 + (cols + 0.5) * 10, 5000000 - (rows + 0.5) * 10)
    expected = shapely.contains(UTM_POLYGON, centres)
    off_edge = shapely.distance(UTM_POLYGON.boundary, centres) > 0.5  # centres on an edge may go either way
    masks = [VectorMask.load(p, GRID).inside(GRID.box) for p in write_all(tmp_path)]
    for m in masks:
        assert np.array_equal(m, masks[0])
        assert np.array_equal(m[off_edge], expected[off_edge]) and m.sum() > 3000
    sub = VectorMask.load(tmp_path / "pif.gpkg", GRID).inside(Box(40, 50, 120, 180))
    assert np.array_equal(sub, masks[0][40:120, 50:180])  # any chunk gives the same pixels


def test_bad_vector_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        VectorMask.load(tmp_path / "missing.gpkg", GRID)
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read vector mask"):
        VectorMask.load(bad, GRID)
    points = tmp_path / "points.geojson"
    points.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [15, 45]}}
                ],
            }
        )
    )
    with pytest.raises(InputError, match="holds no polygon"):
        VectorMask.load(points, GRID)


@settings(deadline=None, max_examples=40)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 70), st.integers(5, 40), st.integers(5, 40)),
        min_size=2,
        max_size=6,
    )
)
def test_seam_polygons_partition_the_union_of_footprints(rects):
    """Random footprints with 3- and 4-way overlaps: polygons cover the union once, each inside its footprint."""
    from stacrrn.core.seamlines import partition
    from stacrrn.io.vectors import polygonize

    grid = Grid("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), 100, 80)
    masks, shapes = [], []
    for r0, c0, h, w in rects:
        m = np.zeros((80, 100), bool)
        m[r0 : r0 + h, c0 : c0 + w] = True
        masks.append(m)
        r1, c1 = min(r0 + h, 80), min(c0 + w, 100)
        shapes.append(shapely.box(500000 + 10 * c0, 5000000 - 10 * r1, 500000 + 10 * c1, 5000000 - 10 * r0))
    labels = partition(masks, [f"i{k}" for k in range(len(masks))])
    regions = polygonize(labels, grid)
    pixel = 100.0
    union = shapely.union_all(shapes)
    assert abs(sum(r.area for r in regions.values()) - union.area) < pixel * len(regions)  # once, no gap
    assert abs(shapely.union_all(list(regions.values())).area - union.area) < pixel * len(regions)
    for k, region in regions.items():
        assert region.difference(shapes[k]).area < 1e-6  # inside its own footprint


def test_geoparquet_keeps_every_property_type_and_reads_back_as_polygons(tmp_path):
    from stacrrn.io.vectors import read_polygons, write_geoparquet

    other = shapely.box(500000, 4998000, 500500, 4998500)
    features = [
        (UTM_POLYGON, {"image": "t00", "priority": 1.5, "pixels": 7, "note": None}),
        (other, {"image": "té01", "priority": None, "pixels": 2**40, "note": b"\x00\xff"}),
    ]
    path = tmp_path / "seams.parquet"
    write_geoparquet(path, features, "EPSG:32633")
    table = pq.read_table(path)
    assert table.schema.field("image").type == pa.string() and table.schema.field("pixels").type == pa.int64()
    assert table.column("image").to_pylist() == ["t00", "té01"]
    assert table.column("priority").to_pylist() == [1.5, None]
    assert table.column("pixels").to_pylist() == [7, 2**40]
    assert table.column("note").to_pylist() == [None, b"\x00\xff"]
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["columns"]["geometry"]["geometry_types"] == ["Polygon"]
    polygons, crs = read_polygons(path)
    assert crs.to_epsg() == 32633
    assert all(p.equals(q) for p, q in zip(polygons, [UTM_POLYGON, other], strict=True))


def test_writing_geoparquet_does_not_import_pandas(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, shapely; from stacrrn.io.vectors import write_geoparquet; "
        f"write_geoparquet({str(tmp_path / 'x.parquet')!r}, [(shapely.box(0, 0, 1, 1), {{'image': 'a', 'area': 1.0}})],"
        " 'EPSG:32633'); print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # pyarrow.array would import it (0.2 s of a mosaic)
