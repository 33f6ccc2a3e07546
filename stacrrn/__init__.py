"""stacrrn: STAC-native relative radiometric normalization (Yu et al. 2017 global-to-local).

The public Python API::

    import stacrrn
    search = stacrrn.Search(stac="https://...", collections=("sentinel-2-l2a",), bbox=(...))
    result = stacrrn.run(search, "s3://bucket/prefix", assets=["red", "nir"])   # STAC in, STAC out
    result = stacrrn.match(["a.tif", "b.tif"], "out/", references=["a"])       # local files

and the steps: :func:`search_items`, :func:`choose_assets`, :func:`select_bands`, :func:`load_items`,
:func:`make_plan`, :func:`compute_statistics`, :func:`solve_global`, :func:`solve_local`,
:func:`fit_model`, :func:`apply_model`, :func:`catalog_rasters`; masks and PIFs:
:class:`PifOptions`, :func:`fit_irmad`, :func:`validate_holdout`, :func:`mask_plans`,
:func:`write_cloud_masks`, :func:`write_pif_masks`; mosaics: :func:`mosaic_sources`,
:func:`mosaic`, :func:`mosaic_of_run`, :func:`compute_seams`, :func:`partition`.
"""

from __future__ import annotations

import importlib
from typing import Any

from stacrrn._version import __version__

_EXPORTS = {
    "METHODS": "stacrrn.core.model",
    "RRNModel": "stacrrn.core.model",
    "GlobalFit": "stacrrn.core.global_model",
    "solve_global": "stacrrn.core.global_model",
    "LocalFit": "stacrrn.core.local_model",
    "LocalParams": "stacrrn.core.local_params",
    "solve_local": "stacrrn.core.local_model",
    "solve_global_local": "stacrrn.core.global_local",
    "Statistics": "stacrrn.core.statistics",
    "InputError": "stacrrn.errors",
    "StacrrnError": "stacrrn.errors",
    "apply_model": "stacrrn.pipeline.passes.apply",
    "MatchResult": "stacrrn.pipeline.match",
    "fit_model": "stacrrn.pipeline.passes.solve",
    "match": "stacrrn.pipeline.match",
    "Plan": "stacrrn.pipeline.inputs.plan",
    "make_plan": "stacrrn.pipeline.inputs.plan",
    "compute_statistics": "stacrrn.pipeline.passes.statistics",
    "Search": "stacrrn.io.stac",
    "search_items": "stacrrn.io.stac",
    "select_bands": "stacrrn.io.stac",
    "choose_assets": "stacrrn.io.band_choice",
    "load_items": "stacrrn.pipeline.loading.stac_plan",
    "run": "stacrrn.pipeline.run",
    "RunResult": "stacrrn.pipeline.run",
    "catalog_rasters": "stacrrn.pipeline.outputs.catalog",
    "PifOptions": "stacrrn.pipeline.inputs.pif_options",
    "ESTIMATORS": "stacrrn.core.global_model",
    "fit_irmad": "stacrrn.core.pif",
    "validate_holdout": "stacrrn.core.validation",
    "mask_plans": "stacrrn.pipeline.mask_products",
    "write_cloud_masks": "stacrrn.pipeline.mask_products",
    "write_pif_masks": "stacrrn.pipeline.mask_products",
    "mosaic": "stacrrn.pipeline.mosaic.mosaic",
    "mosaic_sources": "stacrrn.pipeline.mosaic.mosaic",
    "mosaic_of_run": "stacrrn.pipeline.mosaic.mosaic",
    "compute_seams": "stacrrn.pipeline.mosaic.seams",
    "partition": "stacrrn.core.seamlines",
}


def __getattr__(name: str) -> Any:
    """Import public names lazily, so ``import stacrrn.core`` stays free of I/O libraries."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stacrrn' has no attribute {name!r}")


__all__ = [
    "ESTIMATORS",
    "METHODS",
    "GlobalFit",
    "InputError",
    "LocalFit",
    "LocalParams",
    "MatchResult",
    "PifOptions",
    "Plan",
    "RRNModel",
    "RunResult",
    "Search",
    "StacrrnError",
    "Statistics",
    "__version__",
    "apply_model",
    "catalog_rasters",
    "choose_assets",
    "compute_seams",
    "compute_statistics",
    "fit_irmad",
    "fit_model",
    "load_items",
    "make_plan",
    "mask_plans",
    "match",
    "mosaic",
    "mosaic_of_run",
    "mosaic_sources",
    "partition",
    "run",
    "search_items",
    "select_bands",
    "solve_global",
    "solve_global_local",
    "solve_local",
    "validate_holdout",
    "write_cloud_masks",
    "write_pif_masks",
]
