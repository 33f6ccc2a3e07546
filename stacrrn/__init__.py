"""stacrrn: STAC-native relative radiometric normalization (Yu et al. 2017 global-to-local).

The public Python API::

    import stacrrn
    result = stacrrn.match(["a.tif", "b.tif"], "out/", references=["a"])

and its steps: :func:`make_plan`, :func:`compute_statistics`, :func:`solve_global`,
:func:`solve_local`, :func:`fit_model`, :func:`apply_model`.
"""

from stacrrn.core.global_model import GlobalFit, solve_global
from stacrrn.core.local_model import LocalFit, LocalParams, solve_local
from stacrrn.core.model import METHODS, RRNModel
from stacrrn.core.statistics import Statistics
from stacrrn.errors import InputError, StacrrnError
from stacrrn.pipeline.apply import apply_model
from stacrrn.pipeline.match import MatchResult, fit_model, match
from stacrrn.pipeline.plan import Plan, make_plan
from stacrrn.pipeline.statistics import compute_statistics

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "GlobalFit",
    "InputError",
    "LocalFit",
    "LocalParams",
    "MatchResult",
    "Plan",
    "RRNModel",
    "StacrrnError",
    "Statistics",
    "apply_model",
    "compute_statistics",
    "fit_model",
    "make_plan",
    "match",
    "solve_global",
    "solve_local",
]
