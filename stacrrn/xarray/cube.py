"""What stacrrn reads of an xarray object: images along a dimension, bands, the grid and nodata.

A :class:`Cube` is the common view of the two layouts stacrrn accepts:

- a :class:`xarray.Dataset` with one variable per band, dims ``(time, y, x)``, as
  ``odc.stac.load`` returns it;
- a :class:`xarray.DataArray` with dims ``(time, band, y, x)``, as ``stackstac.stack`` returns
  it (the band coordinate names the bands), or ``(time, y, x)`` for one band.

Images are the steps along ``dim``; they are named by their labels (dates as
``2021-05-27`` or ``2021-05-27T11:06:21``). The grid comes from odc-geo's ``.odc.geobox``
(rioxarray's ``.rio`` when odc-geo finds no CRS and rioxarray is installed).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from rasterio.crs import CRS

from stacrrn.errors import DataTypeError, InputError, MissingCRSError, NodataError, ParameterError
from stacrrn.pipeline.inputs.checks import SUPPORTED_DTYPES
from stacrrn.types import Grid

Nodata = float | None | Literal["auto"]
"""Which value marks invalid pixels besides NaN: ``"auto"`` (the ``nodata`` or ``_FillValue``
attribute of each band), ``None`` (none) or a number."""

XrObject = xr.Dataset | xr.DataArray
"""What the xarray front end works on."""


@dataclass(frozen=True)
class Cube:
    """Bands of images along one dimension, on one grid.

    Attributes
    ----------
    bands
        One array per band with dims ``dim``, ``y`` and ``x`` (in any order).
    labels
        Band names: variable names, or the band coordinate's values.
    names
        Image names, one per step along ``dim`` (its labels, unique).
    dim, y, x
        Names of the image dimension and of the spatial dimensions.
    grid
        The pixel grid (north-up).
    nodata
        Each band's nodata value (``None``: only NaN is invalid).
    dates
        Each image's date when ``dim`` holds date-times, else ``None``.
    """

    bands: tuple[xr.DataArray, ...]
    labels: tuple[str, ...]
    names: tuple[str, ...]
    dim: str
    y: str
    x: str
    grid: Grid
    nodata: tuple[float | None, ...]
    dates: tuple[dt.datetime | None, ...]

    @property
    def steps(self) -> int:
        """Number of images along ``dim``."""
        return len(self.names)

    def dtype(self, k: int) -> np.dtype[Any]:
        """Data type of band ``k``."""
        return np.dtype(self.bands[k].dtype)


def cube_of(
    obj: XrObject,
    dim: str = "time",
    band_dim: str = "band",
    variables: Sequence[str] | None = None,
    nodata: Nodata = "auto",
) -> Cube:
    """The images, bands, grid and nodata of ``obj`` (nothing is computed).

    Parameters
    ----------
    obj
        A Dataset (one variable per band) or a DataArray (a ``band_dim`` dimension, or one band).
    dim
        Dimension of the images.
    band_dim
        Dimension of the bands of a DataArray.
    variables
        Bands to use: variable names of a Dataset, band labels of a DataArray (default all
        variables with dims ``(dim, y, x)``, all bands).
    nodata
        See :data:`Nodata`.

    Raises
    ------
    ParameterError
        For another type of object, an unknown ``dim`` or variable, or extra dimensions.
    InputError
        For fewer than two images, no spatial dimensions, or a grid that is not north-up.
    MissingCRSError
        If the object carries no CRS.
    DataTypeError, NodataError
        For a data type stacrrn cannot normalize, or a nodata value the data type cannot hold.
    """
    if not isinstance(obj, xr.Dataset | xr.DataArray):
        raise ParameterError(f"stacrrn.xarray works on an xarray Dataset or DataArray, got {type(obj).__name__}")
    y, x = spatial_dims(obj)
    if dim not in obj.dims:
        shown = ", ".join(map(str, obj.dims))
        raise ParameterError(f"dimension {dim!r} is not one of {shown}; pass dim= the dimension of the images")
    if obj.sizes[dim] < 2:
        raise InputError(
            f"normalization needs at least two images along {dim!r}; got {obj.sizes[dim]}: select more {dim} steps"
        )
    bands, labels = _bands(obj, dim, y, x, band_dim, variables)
    grid = grid_of(obj, y, x)
    values = obj[dim].values if dim in obj.coords else np.arange(obj.sizes[dim])
    names = image_names(values)
    dates = tuple(_date(v) for v in values)
    fill = tuple(_nodata_of(b, label, nodata) for b, label in zip(bands, labels, strict=True))
    return Cube(tuple(bands), tuple(labels), names, dim, y, x, grid, fill, dates)


def spatial_dims(obj: XrObject) -> tuple[str, str]:
    """Names of the ``(y, x)`` dimensions (odc-geo's detection: ``y/x``, ``latitude/longitude``...).

    Raises
    ------
    InputError
        If there are none.
    """
    import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

    found = obj.odc.spatial_dims
    if found is None:
        shown = ", ".join(map(str, obj.dims))
        raise InputError(f"no spatial dimensions among {shown}: stacrrn.xarray needs y/x (or latitude/longitude)")
    return str(found[0]), str(found[1])


def _bands(
    obj: XrObject, dim: str, y: str, x: str, band_dim: str, variables: Sequence[str] | None
) -> tuple[list[xr.DataArray], list[str]]:
    """One array per band with dims ``{dim, y, x}``, and the band labels."""
    if isinstance(obj, xr.Dataset):
        return _dataset_bands(obj, dim, y, x, variables)
    if band_dim in obj.dims:
        _check_dims(obj, {dim, band_dim, y, x}, f"DataArray {obj.name or ''}".strip())
        coord = obj[band_dim].values if band_dim in obj.coords else np.arange(1, obj.sizes[band_dim] + 1)
        labels = [str(v) for v in coord]
        if len(set(labels)) < len(labels):
            raise InputError(f"the {band_dim!r} coordinate repeats band names ({', '.join(labels)}); make them unique")
        chosen = _chosen(labels, variables, "band")
        return [obj.isel({band_dim: labels.index(label)}, drop=True) for label in chosen], chosen
    _check_dims(obj, {dim, y, x}, f"DataArray {obj.name or ''}".strip())
    label = str(obj.name) if obj.name is not None else "1"
    return [obj], _chosen([label], variables, "band")


def _dataset_bands(
    ds: xr.Dataset, dim: str, y: str, x: str, variables: Sequence[str] | None
) -> tuple[list[xr.DataArray], list[str]]:
    fitting = [str(v) for v in ds.data_vars if set(ds[v].dims) == {dim, y, x}]
    if variables is None:
        if not fitting:
            raise ParameterError(f"no data variable of the Dataset has dims ({dim}, {y}, {x}); pass variables=")
        return [ds[v] for v in fitting], fitting
    chosen = _chosen([str(v) for v in ds.data_vars], variables, "variable")
    for v in chosen:
        _check_dims(ds[v], {dim, y, x}, f"variable {v!r}")
    return [ds[v] for v in chosen], chosen


def _chosen(known: list[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    if wanted is None:
        return known
    if isinstance(wanted, str):
        raise ParameterError(f"variables= takes a list of {what} names, e.g. [{wanted!r}]")
    missing = [w for w in wanted if w not in known]
    if missing:
        raise ParameterError(f"unknown {what}(s) {', '.join(map(repr, missing))}; known: {', '.join(known)}")
    if not wanted:
        raise ParameterError("variables= selects no band")
    return list(dict.fromkeys(wanted))


def _check_dims(arr: xr.DataArray, wanted: set[Hashable], what: str) -> None:
    if set(arr.dims) != wanted:
        raise ParameterError(
            f"{what} has dims ({', '.join(map(str, arr.dims))}); stacrrn.xarray needs exactly "
            f"({', '.join(sorted(map(str, wanted)))}): select or squeeze the others"
        )


def grid_of(obj: XrObject, y: str, x: str) -> Grid:
    """The north-up pixel grid of ``obj``: odc-geo's geobox, or rioxarray's CRS and transform.

    Raises
    ------
    MissingCRSError
        If neither finds a CRS.
    InputError
        If the grid is rotated or its ``y`` coordinate increases.
    """
    geobox = obj.odc.geobox
    crs = None if geobox is None else geobox.crs
    if crs is not None:
        wkt = CRS.from_epsg(crs.epsg).to_wkt() if crs.epsg is not None else CRS.from_user_input(crs.to_wkt()).to_wkt()
        t = geobox.affine
        return _north_up(Grid(wkt, (t.a, t.b, t.c, t.d, t.e, t.f), int(obj.sizes[x]), int(obj.sizes[y])), y)
    rio = _rio_grid(obj)
    if rio is not None:
        return _north_up(rio, y)
    raise MissingCRSError(
        "the data carries no CRS (no spatial_ref coordinate, crs attribute or geobox); assign one, e.g. "
        "`ds = ds.odc.assign_crs('EPSG:32633')` (with `import odc.geo.xr`)"
    )


def _rio_grid(obj: XrObject) -> Grid | None:
    """The grid rioxarray finds, if it is installed and finds a CRS."""
    try:
        import rioxarray  # noqa: F401  (registers the .rio accessor)
    except ImportError:
        return None
    crs = obj.rio.crs
    if crs is None:
        return None
    t = obj.rio.transform()
    return Grid(CRS.from_user_input(crs).to_wkt(), (t.a, t.b, t.c, t.d, t.e, t.f), obj.rio.width, obj.rio.height)


def _north_up(grid: Grid, y: str) -> Grid:
    a, b, _, d, e, _ = grid.transform
    if b != 0 or d != 0:
        raise InputError("the grid is rotated; stacrrn.xarray needs a north-up grid (reproject it first)")
    if e > 0 or a < 0:
        raise InputError(
            f"the {y!r} coordinate increases (or x decreases): flip it first, e.g. `ds.isel({y}=slice(None, None, -1))`"
        )
    return grid


def image_names(values: np.ndarray[Any, Any]) -> tuple[str, ...]:
    """Names of the images from their labels: dates (``2021-05-27``, or with the time when any has one), or text.

    Labels that repeat get ``#k`` (their position) appended, so names stay unique.
    """
    if np.issubdtype(values.dtype, np.datetime64):
        stamps = [pd.Timestamp(v) for v in values]
        dated = all(s == s.normalize() for s in stamps if not pd.isna(s))
        labels = [
            "NaT" if pd.isna(s) else (s.strftime("%Y-%m-%d") if dated else s.isoformat(timespec="auto")) for s in stamps
        ]
    else:
        labels = [str(v) for v in values]
    counts = Counter(labels)
    return tuple(label if counts[label] == 1 else f"{label}#{k}" for k, label in enumerate(labels))


def _date(value: Any) -> dt.datetime | None:
    if isinstance(value, np.datetime64 | pd.Timestamp | dt.datetime) and not pd.isna(value):
        when: dt.datetime = pd.Timestamp(value).to_pydatetime(warn=False)
        return when
    return None


def _nodata_of(band: xr.DataArray, label: str, nodata: Nodata) -> float | None:
    """The band's nodata value (``None``: none), checked against its data type.

    Raises
    ------
    DataTypeError
        For a data type stacrrn cannot normalize.
    NodataError
        For a nodata value an integer band cannot hold.
    ParameterError
        For a ``nodata`` that is neither ``"auto"``, ``None`` nor a number.
    """
    dtype = np.dtype(band.dtype)
    if dtype.name not in SUPPORTED_DTYPES:
        raise DataTypeError(
            f"band {label!r} holds {dtype.name} values; stacrrn normalizes {', '.join(SUPPORTED_DTYPES)}: "
            "convert it first, e.g. `.astype('float32')`"
        )
    if isinstance(nodata, str):
        if nodata != "auto":
            raise ParameterError(f"nodata= must be 'auto', None or a number, got {nodata!r}")
        found = next((band.attrs[k] for k in ("nodata", "_FillValue") if band.attrs.get(k) is not None), None)
        value = None if found is None else float(found)
    elif nodata is None or (isinstance(nodata, int | float) and not isinstance(nodata, bool)):
        value = None if nodata is None else float(nodata)
    else:
        raise ParameterError(f"nodata= must be 'auto', None or a number, got {nodata!r}")
    if value is None or dtype.kind == "f":
        return value
    limits = np.iinfo(dtype)
    if math.isnan(value):  # NaN marks nothing in integers
        return None
    if value != round(value) or not limits.min <= value <= limits.max:
        raise NodataError(
            f"band {label!r}: nodata {value:g} is not a {dtype.name} value ({limits.min}..{limits.max}); pass nodata="
        )
    return value


def valid_of(values: np.ndarray[Any, Any], nodata: float | None) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where ``values`` are valid: finite and not ``nodata``."""
    ok: np.ndarray[Any, np.dtype[np.bool_]] = (
        np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
    )
    if nodata is not None and not math.isnan(nodata):
        ok &= values != nodata
    return ok
