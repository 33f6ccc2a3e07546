"""Fit then apply, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import xarray as xr

from stacrrn.pipeline.passes.correction import OutputType
from stacrrn.xarray.apply import apply
from stacrrn.xarray.cube import Nodata, XrObject
from stacrrn.xarray.fit import fit


@overload
def normalize(
    obj: xr.Dataset,
    *,
    dim: str = ...,
    band_dim: str = ...,
    variables: Sequence[str] | None = ...,
    dtype: OutputType = ...,
    nodata: Nodata = ...,
    **fit_options: Any,
) -> xr.Dataset: ...


@overload
def normalize(
    obj: xr.DataArray,
    *,
    dim: str = ...,
    band_dim: str = ...,
    variables: Sequence[str] | None = ...,
    dtype: OutputType = ...,
    nodata: Nodata = ...,
    **fit_options: Any,
) -> xr.DataArray: ...


def normalize(
    obj: XrObject,
    *,
    dim: str = "time",
    band_dim: str = "band",
    variables: Sequence[str] | None = None,
    dtype: OutputType = "float",
    nodata: Nodata = "auto",
    **fit_options: Any,
) -> XrObject:
    """Fit a model to ``obj`` (:func:`~stacrrn.xarray.fit`), then correct ``obj`` with it (lazily).

    Pass 1 runs now; the correction is lazy. The model's digest is in the result's
    ``rrn:model`` attribute; to keep the model itself, call ``fit`` then ``apply``.

    Parameters
    ----------
    obj
        A Dataset or DataArray, as for :func:`~stacrrn.xarray.fit`.
    dim, band_dim, variables, nodata
        As for :func:`~stacrrn.xarray.fit` and :func:`~stacrrn.xarray.apply`.
    dtype
        Output data type (:func:`~stacrrn.xarray.apply`).
    **fit_options
        Further keywords of :func:`~stacrrn.xarray.fit` (``options``, ``references``,
        ``workers``, ``footprints``, ``method="global"``...).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        The corrected data, Dask-backed.
    """
    model = fit(obj, dim=dim, band_dim=band_dim, variables=variables, nodata=nodata, **fit_options)
    chunk = fit_options.get("chunk_size")
    extra = {} if chunk is None else {"chunk_size": chunk}
    return apply(obj, model, dim=dim, band_dim=band_dim, variables=variables, dtype=dtype, nodata=nodata, **extra)
