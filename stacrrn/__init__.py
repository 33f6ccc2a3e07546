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
:func:`mosaic`, :func:`mosaic_of_run`, :func:`compute_seams`, :func:`partition`; every error
class of :mod:`stacrrn.errors` (:class:`StacrrnError` and below); and :data:`__version__`.
xarray objects (odc-stac, stackstac): ``import stacrrn.xarray`` (``fit``, ``apply``,
``normalize`` and the ``.rrn`` accessor).

``import stacrrn`` imports nothing but the version: each public name is imported from its
module the first time it is used, so ``import stacrrn`` and ``import stacrrn.core`` stay free
of numpy, rasterio, pystac and xarray. The ``if TYPE_CHECKING:`` imports below are the one
list of public names and where they live: type checkers and IDEs read them, and the lazy
loader reads them too (``tests/test_public_api.py`` checks that ``__all__`` names the same).
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import TYPE_CHECKING, Any

from stacrrn._version import __version__

if TYPE_CHECKING:  # the public names: `from module import names` only (see _public_names)
    # numerical core (numpy, scipy)
    from stacrrn.core.global_local import solve_global_local
    from stacrrn.core.global_model import GlobalFit, solve_global
    from stacrrn.core.local_model import LocalFit, solve_local
    from stacrrn.core.model import RRNModel
    from stacrrn.core.pif import fit_irmad
    from stacrrn.core.seamlines import partition
    from stacrrn.core.settings import ESTIMATORS, METHODS, LocalParams
    from stacrrn.core.statistics import Statistics
    from stacrrn.core.validation import validate_holdout

    # errors
    from stacrrn.errors import (
        ArgumentError,
        BandMismatchError,
        DataTypeError,
        DisconnectedError,
        EmptyImageError,
        EmptySearchError,
        ImagesUnreadableError,
        InputError,
        MissingAssetError,
        MissingCRSError,
        NodataError,
        NoOverlapError,
        OutputError,
        ParameterError,
        PayloadError,
        RunLockedError,
        ServiceError,
        SolveError,
        StacrrnError,
        TemporaryError,
        TransientIOError,
        UnreadableRasterError,
    )

    # STAC input
    from stacrrn.io.band_choice import choose_assets
    from stacrrn.io.stac import Search, search_items, select_bands

    # options of a job
    from stacrrn.options import (
        ExecutionOptions,
        InputOptions,
        MaskOptions,
        ModelOptions,
        OutputOptions,
        PifOptions,
        RunOptions,
    )

    # pipeline: plan, passes, outputs, jobs
    from stacrrn.pipeline.inputs.plan import Plan, make_plan
    from stacrrn.pipeline.loading.stac_plan import load_items
    from stacrrn.pipeline.mask_products import mask_plans, write_cloud_masks, write_pif_masks
    from stacrrn.pipeline.match import MatchResult, match
    from stacrrn.pipeline.mosaic.mosaic import mosaic, mosaic_of_run, mosaic_sources
    from stacrrn.pipeline.mosaic.seams import compute_seams
    from stacrrn.pipeline.outputs.catalog import catalog_rasters
    from stacrrn.pipeline.passes.apply import apply_model
    from stacrrn.pipeline.passes.solve import fit_model
    from stacrrn.pipeline.passes.statistics import compute_statistics
    from stacrrn.pipeline.run import RunResult, run

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "ArgumentError",
    "BandMismatchError",
    "DataTypeError",
    "DisconnectedError",
    "EmptyImageError",
    "EmptySearchError",
    "ExecutionOptions",
    "GlobalFit",
    "ImagesUnreadableError",
    "InputError",
    "InputOptions",
    "LocalFit",
    "LocalParams",
    "MaskOptions",
    "MatchResult",
    "MissingAssetError",
    "MissingCRSError",
    "ModelOptions",
    "NoOverlapError",
    "NodataError",
    "OutputError",
    "OutputOptions",
    "ParameterError",
    "PayloadError",
    "PifOptions",
    "Plan",
    "RRNModel",
    "RunLockedError",
    "RunOptions",
    "RunResult",
    "Search",
    "ServiceError",
    "SolveError",
    "StacrrnError",
    "Statistics",
    "TemporaryError",
    "TransientIOError",
    "UnreadableRasterError",
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


@functools.cache
def _public_names() -> dict[str, str]:
    """Each public name and the module it is imported from: the ``if TYPE_CHECKING:`` imports above.

    Read from this module's source on the first lookup of a public name, so the imports type
    checkers see are also the table the lazy loader uses.
    """
    import ast
    import inspect

    try:
        source = inspect.getsource(sys.modules[__name__])
    except OSError as exc:  # installed without its .py files
        raise ImportError(f"{__name__} reads its public names from its source, which is missing: {exc}") from exc
    tree = ast.parse(source)
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    )
    modules: dict[str, str] = {}
    for node in block.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            raise ImportError(f"{__name__}: its TYPE_CHECKING block may hold only `from module import names`")
        modules.update((alias.asname or alias.name, node.module) for alias in node.names)
    return modules


def _lazy_attribute(name: str) -> Any:
    """Import the public ``name`` from its module the first time it is asked for."""
    module = _public_names().get(name) if name in __all__ else None
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    """The public names (``dir(stacrrn)``), imported or not yet."""
    return list(__all__)


if not TYPE_CHECKING:  # type checkers see the imports above, and no __getattr__ that would hide a misspelt name
    __getattr__ = _lazy_attribute
