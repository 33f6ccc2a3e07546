"""xarray-native normalization: fit a model to a Dataset or DataArray and correct it lazily.

::

    import stacrrn.xarray

    model = stacrrn.xarray.fit(ds, method="global+local", references=["2021-05-27"])
    corrected = stacrrn.xarray.apply(ds, model, dtype="source")   # a Dask graph
    corrected = ds.rrn.normalize()                                # the accessor: fit, then apply

``ds`` is a Dataset with one variable per band and dims ``(time, y, x)`` (``odc.stac.load``)
or a DataArray ``(time, band, y, x)`` (``stackstac.stack``). Pass 1 is the file jobs' own
(:func:`~stacrrn.pipeline.passes.statistics.compute_statistics` over a Plan that reads the
object), so the model is the one :func:`stacrrn.match` fits on files holding the same pixels.
Importing this module registers the ``.rrn`` accessor.
"""

from __future__ import annotations

from stacrrn.pipeline.passes.correction import MODEL_ATTR, OutputType
from stacrrn.xarray.accessor import RRNAccessor, register
from stacrrn.xarray.apply import apply
from stacrrn.xarray.cube import Nodata
from stacrrn.xarray.fit import Reference, fit
from stacrrn.xarray.normalize import normalize
from stacrrn.xarray.plan import Footprints

register()

__all__ = ["MODEL_ATTR", "Footprints", "Nodata", "OutputType", "RRNAccessor", "Reference", "apply", "fit", "normalize"]
