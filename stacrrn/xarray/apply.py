"""Apply a model to an xarray Dataset or DataArray lazily: one Dask task per chunk, nothing computed.

Each chunk is corrected by the file jobs' kernel (:func:`stacrrn.core.correct.correct`, then
:func:`stacrrn.core.correct.cast` when the source data type is kept): the image's gain and
offset, and its local gain field evaluated at the chunk's pixel centres mapped onto the
model's grid (the data may lie on another grid than the model's, as a file in pass 2 may).
The field is evaluated in strips of :data:`~stacrrn.pipeline.passes.apply.STRIP_ROWS` rows
aligned on the grid, as pass 2 does, so the pixels are the files' own
(:class:`~stacrrn.pipeline.passes.correction.Correction`, which ``run --format zarr`` uses too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from stacrrn.core.model import RRNModel
from stacrrn.errors import InputError, ParameterError
from stacrrn.options import DEFAULT_CHUNK
from stacrrn.pipeline.passes.correction import (
    METHOD_ATTR,
    MODEL_ATTR,
    OUTPUT_TYPES,
    Correction,
    OutputType,
    output_dtype,
)
from stacrrn.types import Box
from stacrrn.xarray.cube import Cube, Nodata, XrObject, cube_of, valid_of

F64 = NDArray[np.float64]

ENCODING_KEYS = ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value")
"""Encoding that no longer describes float output (it would quantize it back when written)."""


@dataclass(frozen=True)
class BlockTask:
    """The function Dask maps over the chunks of one array (the correction and the array's axes)."""

    correction: Correction
    axes: tuple[int, int | None, int, int]
    """Axis of the images, of the bands (``None``: one band, ``band``), of y and of x."""
    band: int
    """The model band of an array without a band axis."""
    dtype: np.dtype[Any]

    def __call__(self, block: NDArray[Any], block_info: Mapping[Any, Any] | None = None) -> NDArray[Any]:
        """Correct one chunk (Dask passes where it lies in ``block_info``)."""
        assert block_info is not None
        where = block_info[0]["array-location"]
        t, b, y, x = self.axes
        box = Box(where[y][0], where[x][0], where[y][1], where[x][1])
        bands = [self.band] if b is None else list(range(*where[b]))
        order = [t, y, x] if b is None else [t, b, y, x]
        values = np.moveaxis(block, order, list(range(len(order))))
        if b is None:
            values = values[:, None]
        out = np.empty(values.shape, dtype=self.dtype)
        nodata = self.correction.nodata
        for k in range(values.shape[0]):
            valid = np.stack([valid_of(values[k, j], nodata[band]) for j, band in enumerate(bands)])
            out[k] = self.correction.window(values[k], valid, where[t][0] + k, bands, box, self.dtype)
        if b is None:
            out = out[:, 0]
        return np.moveaxis(out, list(range(len(order))), order)


def _lazy(arr: xr.DataArray, cube: Cube, task: BlockTask, chunk_size: int) -> xr.DataArray:
    """``arr`` corrected by ``task`` over its Dask chunks (NumPy data is chunked first)."""
    if arr.chunks is None:
        arr = arr.chunk({d: 1 if d == cube.dim else chunk_size if d in (cube.y, cube.x) else -1 for d in arr.dims})
    meta = np.empty((0,) * arr.ndim, dtype=task.dtype)
    out = arr.copy(data=arr.data.map_blocks(task, dtype=task.dtype, meta=meta))
    if task.correction.output != "source":
        out.attrs = {k: v for k, v in arr.attrs.items() if k not in ("_FillValue", "missing_value")} | {
            "nodata": float("nan")
        }
        out.encoding = {k: v for k, v in arr.encoding.items() if k not in ENCODING_KEYS}
    return out


def _model_images(model: RRNModel, names: Sequence[str]) -> tuple[int, ...]:
    known = [im.name for im in model.images]
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(
            f"{', '.join(missing)} not in the model ({', '.join(known)}); fit the model on these images, "
            "or name the model image of each step with images="
        )
    return tuple(known.index(n) for n in names)


def _recorded_bands(obj: XrObject, model: RRNModel, band_dim: str) -> list[str] | None:
    """The band labels the model was fitted on (``quality["xarray"]``), if ``obj`` has them all."""
    recorded = model.quality.get("xarray", {}).get("bands")
    if not recorded:
        return None
    if isinstance(obj, xr.Dataset):
        present = {str(v) for v in obj.data_vars}
    elif band_dim in obj.dims and band_dim in obj.coords:
        present = {str(v) for v in obj[band_dim].values}
    else:
        return None
    return list(recorded) if set(recorded) <= present else None


def correction_of(model: RRNModel, cube: Cube, images: Sequence[str] | None, output: OutputType) -> Correction:
    """The model's parameters in the data's order of images and bands.

    Raises
    ------
    InputError
        If an image is not in the model, or the band counts differ.
    """
    if len(cube.labels) != len(model.bands):
        raise InputError(
            f"the model has {len(model.bands)} band(s), the data {len(cube.labels)} ({', '.join(cube.labels)}); "
            "select the bands the model was fitted on with variables="
        )
    names = cube.names if images is None else tuple(images)
    if len(names) != cube.steps:
        raise ParameterError(f"images= names {len(names)} image(s) for {cube.steps} steps along {cube.dim!r}")
    return Correction.of(model, _model_images(model, names), cube.grid, cube.nodata, output)


@overload
def apply(
    obj: xr.Dataset,
    model: RRNModel,
    *,
    dim: str = ...,
    band_dim: str = ...,
    variables: Sequence[str] | None = ...,
    images: Sequence[str] | None = ...,
    dtype: OutputType = ...,
    nodata: Nodata = ...,
    chunk_size: int = ...,
) -> xr.Dataset: ...


@overload
def apply(
    obj: xr.DataArray,
    model: RRNModel,
    *,
    dim: str = ...,
    band_dim: str = ...,
    variables: Sequence[str] | None = ...,
    images: Sequence[str] | None = ...,
    dtype: OutputType = ...,
    nodata: Nodata = ...,
    chunk_size: int = ...,
) -> xr.DataArray: ...


def apply(
    obj: XrObject,
    model: RRNModel,
    *,
    dim: str = "time",
    band_dim: str = "band",
    variables: Sequence[str] | None = None,
    images: Sequence[str] | None = None,
    dtype: OutputType = "float",
    nodata: Nodata = "auto",
    chunk_size: int = DEFAULT_CHUNK,
) -> XrObject:
    """Correct the images along ``dim`` with ``model``, lazily (nothing is read until computed).

    Parameters
    ----------
    obj
        A Dataset (one variable per band) or a DataArray (``(time, band, y, x)`` or one band),
        NumPy- or Dask-backed, on any grid the model's fields can be mapped to (its own, or
        another resolution or CRS).
    model
        A fitted model (:func:`stacrrn.xarray.fit`, or any job's model).
    dim, band_dim
        Dimensions of the images and of a DataArray's bands.
    variables
        The model's bands in ``obj``, in the model's order: variable names or band labels
        (default: the labels the model was fitted on when ``obj`` has them all, else every
        band). Other variables of a Dataset are kept unchanged.
    images
        The model image of each step along ``dim`` (default: the steps' labels, as
        :func:`~stacrrn.xarray.fit` names them).
    dtype
        ``"float"`` (float64) or ``"float32"``: NaN where invalid; ``"source"``: each band's
        data type and nodata, rounded and clipped as the files of pass 2 are (a valid pixel
        never becomes nodata; without nodata, invalid pixels keep their values).
    nodata
        Value marking invalid pixels besides NaN: ``"auto"`` (the ``nodata`` or
        ``_FillValue`` attribute), ``None`` or a number; also the output's nodata with
        ``dtype="source"``.
    chunk_size
        Chunk edge of NumPy-backed data (Dask-backed data keep their chunks).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type, dims, coordinates and chunks, Dask-backed; attributes ``rrn:model`` (the
        model's digest) and ``rrn:method`` on the object and each corrected band.

    Raises
    ------
    InputError
        If an image or band is not in the model, or the data has no CRS.
    ParameterError
        For an unknown ``dtype``, dimension or variable.
    """
    if dtype not in OUTPUT_TYPES:
        raise ParameterError(f"unknown dtype= {dtype!r}; choose one of {', '.join(OUTPUT_TYPES)}")
    chosen = variables if variables is not None else _recorded_bands(obj, model, band_dim)
    cube = cube_of(obj, dim, band_dim, chosen, nodata)
    correction = correction_of(model, cube, images, dtype)
    tags = {MODEL_ATTR: model.digest(), METHOD_ATTR: model.method}
    if isinstance(obj, xr.Dataset):
        out = obj.copy()
        for k, (label, band) in enumerate(zip(cube.labels, cube.bands, strict=True)):
            corrected = _lazy(band, cube, _task(correction, band, cube, None, k), chunk_size)
            corrected.attrs.update(tags)
            out[label] = corrected
        out.attrs.update(tags)
        return out
    arr = obj if band_dim not in obj.dims else obj.isel({band_dim: _band_positions(obj, band_dim, cube.labels)})
    task = _task(correction, arr, cube, band_dim if band_dim in arr.dims else None, 0)
    corrected = _lazy(arr, cube, task, chunk_size)
    corrected.attrs.update(tags)
    return corrected


def _band_positions(obj: xr.DataArray, band_dim: str, labels: Sequence[str]) -> list[int]:
    """Positions along ``band_dim`` of the bands labelled ``labels`` (coordinate values, or 1-based numbers)."""
    size = obj.sizes[band_dim]
    known = [str(v) for v in obj[band_dim].values] if band_dim in obj.coords else [str(k + 1) for k in range(size)]
    return [known.index(label) for label in labels]


def _task(correction: Correction, arr: xr.DataArray, cube: Cube, band_dim: str | None, band: int) -> BlockTask:
    def axis(name: str) -> int:
        return int(arr.dims.index(name))

    axes = (axis(cube.dim), None if band_dim is None else axis(band_dim), axis(cube.y), axis(cube.x))
    return BlockTask(correction, axes, band, output_dtype(np.dtype(arr.dtype), correction.output))
