"""The model fit from pass-1 statistics: checks, the global and local solves, quality tables.

Both jobs (:func:`~stacrrn.pipeline.match.match` on local files and
:func:`~stacrrn.pipeline.run.run` on STAC items) fit their model here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from stacrrn.core.global_local import GlobalLocalFit, solve_global_local
from stacrrn.core.global_model import GlobalFit, solve_global
from stacrrn.core.metrics import overlap_consistency
from stacrrn.core.model import ImageRef, RRNModel
from stacrrn.core.settings import ESTIMATORS, METHODS, LocalParams
from stacrrn.core.statistics import Statistics
from stacrrn.core.validation import ImageValidation, validate_holdout
from stacrrn.errors import EmptyImageError, NoOverlapError, ParameterError
from stacrrn.pipeline.inputs.checks import check_connected
from stacrrn.pipeline.inputs.plan import Plan

log = logging.getLogger(__name__)


def resolve_references(plan: Plan, references: Sequence[str] | None) -> list[int]:
    """Indices of the named reference images (names, file names or paths).

    Raises
    ------
    ParameterError
        If a reference matches no input.
    """
    out: list[int] = []
    for ref in references or []:
        hits = [
            i
            for i, (name, path) in enumerate(zip(plan.names, plan.paths, strict=True))
            if ref in (name, os.path.basename(path), path) or os.path.abspath(ref) == os.path.abspath(path)
        ]
        if not hits:
            raise ParameterError(f"reference {ref!r} is not one of the inputs ({', '.join(plan.names)})")
        out.extend(h for h in hits if h not in out)
    return out


def _band_list(plan: Plan, labels: Sequence[str] | None) -> str:
    return ", ".join(str(b) for b in (labels or plan.bands))


def check_statistics(
    stats: Statistics,
    plan: Plan,
    min_overlap: int,
    labels: Sequence[str] | None = None,
    references: Sequence[int] = (),
) -> list[str]:
    """Reject unusable statistics; return warnings for images that overlap nothing.

    Raises
    ------
    EmptyImageError
        If an image has no valid pixel, or masks leave it (or all its overlaps) too few.
    NoOverlapError
        If no two images overlap by at least ``min_overlap`` pixels.
    DisconnectedError
        If the overlaps with enough valid pixels leave groups of images without a reference.
    """
    bands = _band_list(plan, labels)
    for path, m in zip(plan.paths, stats.images, strict=True):
        if m.n == 0:
            raise EmptyImageError(
                f"{path} has no valid pixel (all nodata or masked as cloud); remove it from the inputs"
            )
        if m.n < min_overlap:
            raise EmptyImageError(
                f"{path} has only {m.n} valid pixels left in bands {bands} after nodata and cloud masks "
                f"(at least {min_overlap} needed); remove it, or relax --cloud-mask / --min-overlap"
            )
    if plan.pif is not None:
        _check_pif_pixels(stats, plan, min_overlap, bands)
    linked = {k for k, pm in stats.pairs.items() if pm.n >= min_overlap}
    if not linked:
        raise NoOverlapError(
            "no two inputs overlap (by at least "
            f"{min_overlap} valid pixels); pass images that share some ground, or lower --min-overlap"
        )
    check_connected(plan.names, linked, references)
    touched = {i for pair in linked for i in pair}
    lonely = [f"{plan.names[i]} overlaps no other image; it is kept unchanged" for i in range(len(plan.names))]
    return [line for i, line in enumerate(lonely) if i not in touched] + sparse_reference_warnings(
        stats, plan, references
    )


SPARSE_REFERENCE = 0.5
"""A reference with valid pixels on less than this share of its footprint gets a warning."""


def sparse_reference_warnings(stats: Statistics, plan: Plan, references: Sequence[int]) -> list[str]:
    """Warn about reference images that are mostly nodata (or masked) within their footprint.

    A reference anchors its neighbours' gains; when most of it is empty, the overlaps that
    tie them to it are small or at its edges, and their gains rest on little.
    """
    lines = []
    for i in references:
        fp = plan.footprints[i]
        share = stats.images[i].n / max(fp.height * fp.width, 1)
        if share < SPARSE_REFERENCE:
            lines.append(
                f"reference {plan.names[i]} has valid pixels on only {100 * share:.0f} % of its footprint "
                "(nodata, or masked as cloud); the gains tied to it rest on what is left: "
                "prefer a fuller reference"
            )
    return lines


def unfitted_band_warning(model: RRNModel, stats: Statistics, labels: Sequence[str] | None = None) -> list[str]:
    """One line per band the global step could not fit (it varies in no overlap), naming the overlaps."""
    lines = []
    for b in model.global_fit.unfitted:
        label = labels[b] if labels else str(model.bands[b])
        used = sorted(stats.pairs.items(), key=lambda kv: -kv[1].n)[:3]
        counts = ", ".join(f"{model.images[i].name}/{model.images[j].name}: {pm.n} px" for (i, j), pm in used)
        lines.append(
            f"band {label} varies in no overlap in both images at once, or its least-squares system is singular "
            f"(largest overlaps: {counts}); it was left unchanged (gain 1, offset 0): is it a mask or a constant layer?"
        )
    return lines


def _check_pif_pixels(stats: Statistics, plan: Plan, min_overlap: int, bands: str) -> None:
    """Fail when PIF masks (and holdout) leave an image that overlaps others without usable pixels."""
    for i, name in enumerate(plan.names):
        before = max((n for k, n in stats.overlaps.items() if i in k), default=0)
        after = max((pm.n for k, pm in stats.pairs.items() if i in k), default=0)
        if before >= min_overlap and after < min_overlap:
            raise EmptyImageError(
                f"{name}: only {after} pseudo-invariant pixels remain in its best overlap in bands {bands} "
                f"(of {before} valid; at least {min_overlap} needed); relax --pif-threshold, raise "
                "--pif-min-share, drop a --pif criterion, lower --holdout or --min-overlap"
            )


def fit_model(
    plan: Plan,
    stats: Statistics,
    method: str = "global+local",
    references: Sequence[int] = (),
    min_overlap: int = 64,
    local_params: LocalParams | None = None,
    estimator: str = "spread",
) -> RRNModel:
    """Solve the global and/or local model from pass-1 statistics.

    Parameters
    ----------
    plan
        The run's layout.
    stats
        Pass-1 statistics.
    method
        One of ``global``, ``local``, ``global+local``.
    references
        Reference image indices; empty means all images' central tendency.
    min_overlap
        Minimum overlap (valid pixels) for a pair to count.
    local_params
        Weights of the local solve.
    estimator
        Relative gain of each pair in the global step: ``spread`` or ``orthogonal``.

    Returns
    -------
    RRNModel
        The fitted model; ``quality`` holds overlap consistency before and after, per-image
        and per-pair tables and, with held-out pixels, their validation.
    """
    check_method(method, estimator)
    refs = list(references) or None
    n, nb = len(plan.names), len(plan.bands)
    params = local_params or LocalParams()
    both: GlobalLocalFit | None = None
    if method == "global":
        gfit = solve_global(stats.images, stats.pairs, refs, min_overlap, estimator)
    else:
        identity = GlobalFit(np.ones((n, nb)), np.zeros((n, nb)), [list(range(n))], [refs or list(range(n))], [])
        base = identity if method == "local" else None
        both = solve_global_local(stats, refs, min_overlap, params, estimator=estimator, base=base)
        gfit = both.global_fit
    lfit = None if both is None else both.local_fit
    quality: dict[str, Any] = {
        "before": overlap_consistency(stats).to_dict(),
        "after_affine": overlap_consistency(stats, gfit).to_dict(),
        "after": overlap_consistency(stats, gfit, lfit).to_dict(),
        "local_bands": []
        if lfit is None
        else [band for k, band in enumerate(plan.bands) if any(np.any(f[k] != 1.0) for f in lfit.fields)],
        "settings": {
            "estimator": estimator,
            "pif": None if plan.pif is None else plan.pif.describe(),
            **({} if lfit is None else {"local": local_settings(params)}),
        },
        **quality_tables(plan, stats),
    }
    if both is not None and params.validated:
        quality["local_validation"] = both.validation.to_dict(plan.names, plan.bands)
    if stats.holdout_blocks:
        quality["holdout"] = holdout_report(plan, validate_holdout(stats, gfit, lfit, list(references)))
    return RRNModel(
        method,
        [ImageRef(name, path) for name, path in zip(plan.names, plan.paths, strict=True)],
        plan.bands,
        plan.grid,
        list(references),
        gfit,
        lfit,
        quality,
    )


def local_settings(params: LocalParams) -> dict[str, Any]:
    """What the model JSON records of the local step's options."""
    bounded = params.extent == "overlaps"
    return {
        "extent": params.extent,
        "decay": params.decay if bounded else None,
        "cross_validate": params.validated,
    }


def log_model(model: RRNModel) -> None:
    """Log the fitted model: method, size and the overlap RMSE per band before and after."""
    q = model.quality
    before, after = q.get("before", {}).get("rmse", []), q.get("after", {}).get("rmse", [])
    fields = {
        "event": "model",
        "method": model.method,
        "digest": model.digest(),
        "rmse_before": before,
        "rmse_after": after,
    }
    pairs = ", ".join(f"{b:.4g} -> {a:.4g}" for b, a in zip(before, after, strict=True))
    log.info(
        "model %s (%s, %d images): overlap RMSE %s",
        model.digest(),
        model.method,
        len(model.images),
        pairs,
        extra={"fields": fields},
    )


def check_method(method: str, estimator: str = "spread") -> None:
    """Raise :class:`ParameterError` for an unknown method or estimator."""
    if method not in METHODS:
        raise ParameterError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if estimator not in ESTIMATORS:
        raise ParameterError(f"unknown --estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def _listed_pairs(plan: Plan, stats: Statistics) -> list[tuple[int, int]]:
    """Pairs of the quality table: those with pixels in common, and those whose footprints meet.

    A pair recorded with no pixel in common whose footprints do not even meet only shared a
    chunk: which such pairs pass 1 records depends on the chunk layout, so they are left out.
    """
    fps = plan.footprints

    def listed(key: tuple[int, int]) -> bool:
        i, j = key
        return bool(stats.overlaps.get(key)) or key in stats.pairs or not fps[i].intersect(fps[j]).empty

    return sorted(key for key in set(stats.overlaps) | set(stats.pairs) if listed(key))


def quality_tables(plan: Plan, stats: Statistics) -> dict[str, Any]:
    """Per-image (valid pixels and share of the footprint) and per-pair (overlap, used, held out) tables."""
    images = [
        {"name": name, "valid_pixels": m.n, "valid_share": m.n / max(fp.height * fp.width, 1)}
        for name, m, fp in zip(plan.names, stats.images, plan.footprints, strict=True)
    ]
    pairs = []
    for key in _listed_pairs(plan, stats):
        held = stats.holdout_blocks.get(key)
        pairs.append(
            {
                "images": [plan.names[key[0]], plan.names[key[1]]],
                "overlap_pixels": stats.overlaps.get(key, 0),
                "used_pixels": stats.pairs[key].n if key in stats.pairs else 0,
                "holdout_pixels": 0 if held is None else int(held.n.sum()),
            }
        )
    return {"images": images, "pairs": pairs}


def holdout_report(plan: Plan, validation: list[ImageValidation]) -> list[dict[str, Any]]:
    """JSON table of held-out validation: per image, its partners and per band before/after."""
    return [
        {
            "image": plan.names[v.image],
            "against": [plan.names[j] for j in v.partners],
            "bands": [
                {"band": band, "before": b.to_dict(), "after": a.to_dict()}
                for band, b, a in zip(plan.bands, v.before, v.after, strict=True)
            ],
        }
        for v in validation
    ]
