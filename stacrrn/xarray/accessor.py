"""The ``.rrn`` accessor of xarray Datasets and DataArrays (registered when :mod:`stacrrn.xarray` is imported)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import xarray as xr

from stacrrn.core.model import RRNModel
from stacrrn.xarray.apply import apply
from stacrrn.xarray.fit import fit
from stacrrn.xarray.normalize import normalize

T = TypeVar("T", xr.Dataset, xr.DataArray)


class RRNAccessor(Generic[T]):
    """``obj.rrn``: radiometric normalization of the images along a dimension of ``obj``.

    ::

        import stacrrn.xarray  # registers the accessor
        model = ds.rrn.fit(method="global", references=["2021-05-27"])
        corrected = ds.rrn.apply(model)              # lazy
        corrected = ds.rrn.normalize(dtype="source")   # both
    """

    def __init__(self, obj: T) -> None:
        self._obj: T = obj

    def fit(self, **kwargs: Any) -> RRNModel:
        """Fit a model to the object: :func:`stacrrn.xarray.fit` (same keywords)."""
        return fit(self._obj, **kwargs)

    def apply(self, model: RRNModel, **kwargs: Any) -> T:
        """The object corrected by ``model``, lazily: :func:`stacrrn.xarray.apply` (same keywords)."""
        out: T = apply(self._obj, model, **kwargs)
        return out

    def normalize(self, **kwargs: Any) -> T:
        """Fit, then apply: :func:`stacrrn.xarray.normalize` (same keywords)."""
        out: T = normalize(self._obj, **kwargs)
        return out


_REGISTER: dict[type, Callable[[str], Callable[[type], type]]] = {
    xr.Dataset: xr.register_dataset_accessor,
    xr.DataArray: xr.register_dataarray_accessor,
}
"""xarray's accessor registration of each class (untyped)."""


def register() -> None:
    """Register :class:`RRNAccessor` as ``.rrn`` on Datasets and DataArrays (once)."""
    for cls, register_on in _REGISTER.items():
        if "rrn" not in cls.__dict__:
            register_on("rrn")(RRNAccessor)
