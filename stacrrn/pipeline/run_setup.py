"""The settings of a STAC run and the layout they give: shared by :func:`run` and the serverless stages.

:func:`prepare` turns options (:class:`~stacrrn.options.RunOptions`) and items into a :class:`RunSetup`: the
selected assets with their headers, the plan of pass 1 and the reference images. Every
stage of a distributed run (statistics of a tile, solve, apply of one item) rebuilds the
same setup from the same items and options, so they agree on the grid, the chunks and the
model's image order without passing anything else around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pystac

from stacrrn.io.output_keys import check_output_keys
from stacrrn.io.stac import select_bands
from stacrrn.options import RunOptions
from stacrrn.pipeline.inputs.checks import check_plan_graph, check_rasters
from stacrrn.pipeline.inputs.pairs import pair_graph
from stacrrn.pipeline.inputs.pif_options import PifSetup
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.pipeline.inputs.stac_inputs import StacInputs, open_assets, spectral_bands
from stacrrn.pipeline.loading.stac_plan import make_stac_plan
from stacrrn.pipeline.passes.solve import resolve_references

COMPUTED_MASKS = ("spectral", "s2cloudless")
"""Cloud masks computed from the pixels (published on the common grid) rather than decoded from QA assets."""


def check_run_options(options: RunOptions) -> None:
    """Validate a STAC run's options before any request.

    Raises
    ------
    ParameterError
        For an inconsistent pair graph (``neighbours`` or ``star`` outside a time series, ...)
        or a fidelity sample step below 1.
    """
    options.check()
    i = options.inputs
    pair_graph(2, i.mode, i.neighbours, ([0] if options.model.references else []) if i.star else None)


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
        return collection_id_of(self.inputs.items, self.options.output.collection_id)


def collection_id_of(items: Sequence[pystac.Item], collection_id: str | None) -> str:
    """``collection_id``, by default ``<first input item's collection>-rrn``."""
    return collection_id or f"{items[0].collection_id or 'stacrrn'}-rrn"


def _grid_options(
    options: RunOptions,
) -> tuple[str | None, float | None, float | None, int | None, int, str, int | None]:
    """The arguments of :func:`make_stac_plan` that lay out the grid, blocks, chunks and pairs."""
    i, m = options.inputs, options.model
    return (i.crs, i.resolution, m.block_size, m.n_blocks, options.execution.chunk_size, i.mode, i.neighbours)


def unmasked_plan(setup: RunSetup) -> Plan:
    """The run's plan read without any cloud or quality mask: the pixels its outputs correct.

    Same grid, footprints and chunks as ``setup.plan``; only what pass 1 leaves out differs.
    """
    inputs = replace(setup.inputs, qa=[None] * len(setup.inputs.items))
    return make_stac_plan(inputs, *_grid_options(setup.options), cloud_mask="none")


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
    i, m, masks = options.inputs, options.model, options.masks
    check_output_keys([it.id for it in items], select_bands(items, i.assets).assets)
    inputs = open_assets(items, i.assets, threads, masks.cloud_mask, skip_errors)
    check_rasters([(key, info) for headers in inputs.assets for key, info in headers.items()])
    plan = make_stac_plan(inputs, *_grid_options(options), masks.cloud_mask, masks.reflectance)
    computed = None
    if masks.cloud_mask in COMPUTED_MASKS:
        computed = (masks.cloud_mask, make_stac_plan(inputs, *_grid_options(options), cloud_mask="none"), plan)
    if masks.pif is not None:
        setup = PifSetup(masks.pif, spectral_bands(inputs, masks.reflectance))
        setup.check()
        plan = replace(plan, pif=setup)
    refs = resolve_references(plan, m.references)
    if i.star:
        plan = replace(plan, pairs=pair_graph(len(plan.names), i.mode, i.neighbours, refs))
    check_plan_graph(plan.names, plan.footprints, plan.pairs, refs)
    return RunSetup(options, inputs, plan, refs, computed)
