"""Vectors: user masks read from GeoJSON, GeoPackage or GeoParquet; seamlines written to them.

GeoJSON, GeoPackage (and anything else OGR reads) go through pyogrio; GeoParquet through
pyarrow, with the CRS from its ``geo`` metadata. Mask geometries are reprojected once to the
common grid's CRS and rasterized on each chunk's box (pixel centres inside a polygon).
Label rasters (seam regions, footprints) are polygonized and written as GeoJSON (WGS 84)
and GeoParquet (in the mosaic CRS).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from rasterio.transform import Affine

from stacrrn.errors import InputError
from stacrrn.types import Box, Grid

Mask = NDArray[np.bool_]


def _read_geoparquet(path: str) -> tuple[list[shapely.Geometry], CRS]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"geo", b"{}"))
    column = meta.get("primary_column", "geometry")
    if column not in table.column_names:
        raise InputError(f"{path} has no geometry column {column!r}; write it as GeoParquet")
    crs = meta.get("columns", {}).get(column, {}).get("crs")
    geoms = list(shapely.from_wkb(table.column(column).to_pylist()))
    return geoms, CRS.from_user_input(crs) if crs else CRS.from_epsg(4326)


def _read_ogr(path: str) -> tuple[list[shapely.Geometry], CRS]:
    import pyogrio.raw

    meta, _, wkb, _ = pyogrio.raw.read(path, read_geometry=True, columns=[])
    if meta.get("crs") is None:
        raise InputError(f"{path} has no coordinate reference system; set one (e.g. with ogr2ogr -a_srs)")
    return list(shapely.from_wkb(wkb)), CRS.from_user_input(meta["crs"])


def read_polygons(path: str | os.PathLike[str]) -> tuple[list[shapely.Geometry], CRS]:
    """Polygons of a vector file and their CRS.

    Raises
    ------
    InputError
        If the file is missing or unreadable, has no CRS, or holds no polygon.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise InputError(f"vector mask {name} does not exist")
    try:
        geoms, crs = _read_geoparquet(name) if name.lower().endswith((".parquet", ".geoparquet")) else _read_ogr(name)
    except InputError:
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for unreadable files
        raise InputError(f"cannot read vector mask {name}: {str(exc).splitlines()[0]}") from None
    polygons = [g for g in geoms if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise InputError(f"vector mask {name} holds no polygon")
    return polygons, crs


def _reprojector(transformer: Transformer) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    return lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))


@dataclass(frozen=True)
class VectorMask:
    """Polygons in a grid's CRS, rasterized on demand over boxes of that grid."""

    path: str
    geometries: tuple[shapely.Geometry, ...]
    grid: Grid

    @classmethod
    def load(cls, path: str | os.PathLike[str], grid: Grid) -> VectorMask:
        """Read ``path`` and reproject its polygons to ``grid``'s CRS."""
        polygons, crs = read_polygons(path)
        target = CRS.from_user_input(grid.crs)
        if not crs.equals(target):
            transformer = Transformer.from_crs(crs, target, always_xy=True)
            polygons = [shapely.transform(g, _reprojector(transformer)) for g in polygons]
        return cls(os.fspath(path), tuple(polygons), grid)

    def inside(self, box: Box) -> Mask:
        """Pixels of ``box`` whose centres fall inside a polygon."""
        a, b, c, d, e, f = self.grid.transform
        transform = Affine(a, b, c, d, e, f) @ Affine.translation(box.col0, box.row0)
        burned = rasterize(
            ((g, 1) for g in self.geometries), out_shape=(box.height, box.width), transform=transform, dtype="uint8"
        )
        return np.asarray(burned, dtype=bool)


def polygonize(labels: NDArray[np.integer], grid: Grid) -> dict[int, shapely.Geometry]:
    """Polygons of each non-negative label of a raster on ``grid`` (pixel edges, in the grid's CRS)."""
    from rasterio.features import shapes

    a, b, c, d, e, f = grid.transform
    parts: dict[int, list[shapely.Geometry]] = {}
    data = labels.astype(np.int32)
    for geom, value in shapes(data, mask=data >= 0, transform=Affine(a, b, c, d, e, f)):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    return {k: shapely.union_all(v) for k, v in parts.items()}


Feature = tuple[shapely.Geometry, dict[str, object]]


def write_geojson(path: str | os.PathLike[str], features: list[Feature], crs: str) -> None:
    """Write features as an RFC 7946 GeoJSON FeatureCollection (reprojected to WGS 84)."""
    transformer = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    out = [
        {
            "type": "Feature",
            "properties": props,
            "geometry": shapely.geometry.mapping(shapely.transform(geom, _reprojector(transformer))),
        }
        for geom, props in features
    ]
    with open(path, "w") as f:
        json.dump({"type": "FeatureCollection", "features": out}, f)


def _arrow_column(values: list[Any]) -> Any:
    """An Arrow array of ``str``, ``bytes``, ``int`` or ``float`` values (``None``: null), built from buffers.

    ``pyarrow.array`` imports pandas (0.2 s, longer than the rest of a mosaic's vectors) to
    check whether the values are pandas objects.
    """
    import pyarrow as pa

    given = [v for v in values if v is not None]
    present = np.packbits([v is not None for v in values], bitorder="little")
    nulls = None if len(given) == len(values) else pa.py_buffer(present)
    if given and isinstance(given[0], str | bytes):
        raw = [b"" if v is None else v.encode() if isinstance(v, str) else bytes(v) for v in values]
        offsets = np.cumsum([0, *map(len, raw)], dtype=np.int32)  # a few features: far below 2 GB
        kind = pa.string() if isinstance(given[0], str) else pa.binary()
        return pa.Array.from_buffers(kind, len(values), [nulls, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))])
    integers = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in given)
    kind, dtype = (pa.int64(), np.int64) if integers else (pa.float64(), np.float64)
    data = np.array([0 if v is None else v for v in values], dtype=dtype)
    return pa.Array.from_buffers(kind, len(values), [nulls, pa.py_buffer(data)])


def write_geoparquet(path: str | os.PathLike[str], features: list[Feature], crs: str) -> None:
    """Write features as GeoParquet 1.1 (WKB geometries in ``crs``, PROJJSON in the ``geo`` metadata).

    Properties hold ``str``, ``bytes``, ``int`` or ``float`` values (or ``None``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {k: [props.get(k) for _, props in features] for k in features[0][1]}
    columns["geometry"] = [shapely.to_wkb(geom) for geom, _ in features]
    types = sorted({g.geom_type for g, _ in features})
    meta = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": types,
                "crs": CRS.from_user_input(crs).to_json_dict(),
                "bbox": list(shapely.union_all([g for g, _ in features]).bounds),
            }
        },
    }
    arrays = [_arrow_column(v) for v in columns.values()]
    table = pa.Table.from_arrays(arrays, names=list(columns)).replace_schema_metadata({"geo": json.dumps(meta)})
    pq.write_table(table, path)
