"""The settings of a STAC run and the layout they give: shared by :func:`run` and the serverless stages.

:class:`RunOptions` holds everything that decides the model and the outputs (not where
pixel tasks run). :func:`prepare` turns options and items into a :class:`RunSetup`: the
selected assets with their headers, the plan of pass 1 and the reference images. Every
stage of a distributed run (statistics of a tile, solve, apply of one item) rebuilds the
same setup from the same items and options, so they agree on the grid, the chunks and the
model's image order without passing anything else around.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import pystac

from stacrrn.core.fidelity import SAMPLE_EVERY
from stacrrn.core.local_params import LocalParams
from stacrrn.errors import ParameterError
from stacrrn.io.output_keys import check_output_keys
from stacrrn.io.stac import select_bands
from stacrrn.pipeline.inputs.checks import check_plan_graph, check_rasters
from stacrrn.pipeline.inputs.pif_options import PifOptions, PifSetup
from stacrrn.pipeline.inputs.plan import DEFAULT_CHUNK, Plan
from stacrrn.pipeline.inputs.stac_inputs import CLOUD_MASKS, StacInputs, open_assets, spectral_bands
from stacrrn.pipeline.loading.stac_plan import make_stac_plan, pair_graph
from stacrrn.pipeline.passes.apply import check_fidelity_every
from stacrrn.pipeline.passes.solve import check_method, resolve_references

COMPUTED_MASKS = ("spectral", "s2cloudless")
"""Cloud masks computed from the pixels (published on the common grid) rather than decoded from QA assets."""


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond float range
        return False


def _are_strings(v: object) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)


_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "assets": (_are_strings, "a list of band names"),
    "mode": (lambda v: isinstance(v, str), "a string"),
    "neighbours": (_is_int, "a whole number"),
    "star": (lambda v: isinstance(v, bool), "true or false"),
    "references": (_are_strings, "a list of item ids"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "block_size": (_is_number, "a number"),
    "n_blocks": (_is_int, "a whole number"),
    "crs": (lambda v: isinstance(v, str), "a string"),
    "resolution": (_is_number, "a number"),
    "min_overlap": (_is_int, "a whole number"),
    "chunk_size": (_is_int, "a whole number"),
    "collection_id": (lambda v: isinstance(v, str), "a string"),
    "cloud_mask": (lambda v: isinstance(v, str), "a string"),
    "reflectance": (
        lambda v: isinstance(v, list | tuple) and len(v) == 2 and all(map(_is_number, v)),
        "[scale, offset]",
    ),
    "pif": (lambda v: isinstance(v, dict), "an object"),
    "estimator": (lambda v: isinstance(v, str), "a string"),
    "local_params": (lambda v: isinstance(v, dict), "an object"),
    "fidelity_every": (_is_int, "a whole number"),
}
"""How each run parameter of a JSON payload must look (checked before the options are built)."""

_LOCAL_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (_is_int, "a whole number"),
    "float": (_is_number, "a number"),
}
"""How a field of ``local_params`` must look, by its annotation (:class:`LocalParams` checks extent and decay)."""


def _local_params(d: Mapping[str, Any]) -> LocalParams:
    """The ``local_params`` object of a payload as :class:`LocalParams`.

    Raises
    ------
    ParameterError
        For a field whose value has the wrong type, an unknown extent or a decay below 1 block.
    TypeError
        For an unknown field (from the constructor; :meth:`RunOptions.from_dict` words it).
    """
    annotations = {
        f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "") for f in fields(LocalParams)
    }
    for key, value in d.items():
        kind = _LOCAL_KINDS.get(annotations.get(key, ""))
        if kind is not None and not kind[0](value):
            raise ParameterError(
                f"run parameter 'local_params' field {key!r} must be {kind[1]}, got {json.dumps(value)[:60]}"
            )
    return LocalParams(**d)


@dataclass(frozen=True)
class RunOptions:
    """What a STAC run computes; see :func:`stacrrn.pipeline.run.run` for each field."""

    assets: tuple[str, ...] | None = None
    mode: str = "mosaic"
    neighbours: int | None = None
    star: bool = False
    references: tuple[str, ...] | None = None
    method: str = "global+local"
    block_size: float | None = None
    n_blocks: int | None = None
    crs: str | None = None
    resolution: float | None = None
    min_overlap: int = 64
    chunk_size: int = DEFAULT_CHUNK
    collection_id: str | None = None
    cloud_mask: str = "auto"
    reflectance: tuple[float, float] | None = None
    pif: PifOptions | None = None
    estimator: str = "spread"
    local_params: LocalParams | None = None
    fidelity_every: int = SAMPLE_EVERY

    def check(self) -> None:
        """Validate the options before any request.

        Raises
        ------
        ParameterError
            For an unknown method, estimator, mode or cloud mask, an inconsistent pair graph,
            or a fidelity sample step below 1.
        """
        check_method(self.method, self.estimator)
        check_fidelity_every(self.fidelity_every)
        star = ([0] if self.references else []) if self.star else None
        pair_graph(2, self.mode, self.neighbours, star)
        if self.cloud_mask not in CLOUD_MASKS:
            raise ParameterError(f"unknown --cloud-mask {self.cloud_mask!r}; choose one of {', '.join(CLOUD_MASKS)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOptions:
        """Options from JSON (a serverless event's parameters); lists become tuples.

        Raises
        ------
        ParameterError
            For an unknown key or a value of the wrong shape.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(repr, set(d) - known))
        if unknown:
            raise ParameterError(f"unknown run parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(d)
        for key, value in values.items():
            if value is not None and not _KINDS[key][0](value):
                raise ParameterError(f"run parameter {key!r} must be {_KINDS[key][1]}, got {json.dumps(value)[:60]}")
        try:
            for key in ("assets", "references", "reflectance"):
                if values.get(key) is not None:
                    values[key] = tuple(values[key])
            if values.get("pif") is not None:
                pif = dict(values["pif"])
                pif["methods"], pif["exclude"] = tuple(pif.get("methods", ())), tuple(pif.get("exclude", ()))
                values["pif"] = PifOptions(**pif)
            if values.get("local_params") is not None:
                values["local_params"] = _local_params(values["local_params"])
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"malformed run parameters: {str(exc).splitlines()[0]!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class RunSetup:
    """Inputs and layout of a run.

    Attributes
    ----------
    options
        The run's options.
    inputs
        Items (sorted by date), band selection, asset headers and quality assets.
    plan
        Pass 1's layout, with the PIF selection and pair graph.
    references
        Indices of the reference items.
    computed_masks
        Cloud test, unmasked and masked plans, when the masks are computed from the pixels
        (published per item on the common grid) rather than decoded from QA assets.
    """

    options: RunOptions
    inputs: StacInputs
    plan: Plan
    references: list[int]
    computed_masks: tuple[str, Plan, Plan] | None = None

    @property
    def items(self) -> list[pystac.Item]:
        """The input items, in model order."""
        return list(self.inputs.items)

    @property
    def collection_id(self) -> str:
        """Id of the output collection (:func:`collection_id_of`)."""
        return collection_id_of(self.inputs.items, self.options.collection_id)


def collection_id_of(items: Sequence[pystac.Item], collection_id: str | None) -> str:
    """``collection_id``, by default ``<first input item's collection>-rrn``."""
    return collection_id or f"{items[0].collection_id or 'stacrrn'}-rrn"


def prepare(items: Sequence[pystac.Item], options: RunOptions, threads: int = 4, skip_errors: bool = False) -> RunSetup:
    """Open the items' assets and lay out the run (no pixel is read).

    Parameters
    ----------
    items
        Input items, sorted by date.
    options
        The run's options (checked by the caller).
    threads
        Concurrent header reads.
    skip_errors
        Leave out items whose assets cannot be opened (``setup.inputs.skipped`` says why).

    Returns
    -------
    RunSetup
        Inputs, plan and references.
    """
    o = options
    check_output_keys([it.id for it in items], select_bands(items, o.assets).assets)
    inputs = open_assets(items, o.assets, threads, o.cloud_mask, skip_errors)
    check_rasters([(key, info) for headers in inputs.assets for key, info in headers.items()])
    grid_options = (o.crs, o.resolution, o.block_size, o.n_blocks, o.chunk_size, o.mode, o.neighbours)
    plan = make_stac_plan(inputs, *grid_options, o.cloud_mask, o.reflectance)
    computed = None
    if o.cloud_mask in COMPUTED_MASKS:
        computed = (o.cloud_mask, make_stac_plan(inputs, *grid_options, cloud_mask="none"), plan)
    if o.pif is not None:
        setup = PifSetup(o.pif, spectral_bands(inputs, o.reflectance))
        setup.check()
        plan = replace(plan, pif=setup)
    refs = resolve_references(plan, o.references)
    if o.star:
        plan = replace(plan, pairs=pair_graph(len(plan.names), o.mode, o.neighbours, refs))
    check_plan_graph(plan.names, plan.footprints, plan.pairs, refs)
    return RunSetup(o, inputs, plan, refs, computed)
