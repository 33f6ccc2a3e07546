"""Is the local step worth keeping? Cross-validation on held-out overlap blocks.

A local field fitted to the overlap blocks always agrees better with those same blocks: the
in-sample comparison cannot tell a real smooth distortion from land-cover change that a
field happens to absorb. Here the usable blocks of every overlap are split into two folds by
a checkerboard of :data:`~stacrrn.core.local_model.FOLD_CELL`-block cells (interleaved, so
each fold covers every overlap); the fields are fitted on one fold and scored on the other,
then the other way round, so every block is predicted once by fields that never saw it.
An image keeps its field in a band only where these held-out predictions agree better with
its partners than the global model's do; elsewhere its field is held at 1 in the final fit.

The score of a block is ``(|mean difference| + |std difference|) / s`` between the two
corrected images (``s`` the band's pooled spread), averaged over an image's held-out blocks
with their pixel counts as weights: a mean absolute error, so a few blocks of real change
weigh as what they are, not squared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.local_model import BandData, LocalProblem, block_residuals, per_band

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class LocalValidation:
    """Held-out overlap agreement of the global model and of the local fields, per image and band.

    Attributes
    ----------
    global_error, local_error
        ``(images, bands)``: pixel-weighted mean of ``(|mean diff| + |std diff|) / s`` over the
        image's held-out overlap blocks, with the global model alone and with local fields
        fitted on the other fold. NaN where the image has no usable overlap block.
    blocks
        ``(images, bands)``: held-out blocks scored.
    kept
        ``(images, bands)``: the field is kept (the held-out error went down).
    """

    global_error: F64
    local_error: F64
    blocks: NDArray[np.int64]
    kept: NDArray[np.bool_]

    @classmethod
    def all_kept(cls, n_images: int, n_bands: int) -> LocalValidation:
        """No validation: every field free, no figures."""
        nan = np.full((n_images, n_bands), np.nan)
        return cls(nan, nan.copy(), np.zeros((n_images, n_bands), np.int64), np.ones((n_images, n_bands), bool))

    def to_dict(self, names: list[str], bands: list[int]) -> dict[str, Any]:
        """JSON table: per band, per image the two held-out errors and the decision."""

        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 6)

        return {
            "method": "two interleaved folds of overlap blocks (checkerboard cells)",
            "score": "pixel-weighted mean of (|mean diff| + |std diff|) / band spread over held-out blocks",
            "bands": [
                {
                    "band": band,
                    "images": [
                        {
                            "image": name,
                            "heldout_blocks": int(self.blocks[i, b]),
                            "global_error": num(self.global_error[i, b]),
                            "local_error": num(self.local_error[i, b]),
                            "kept": bool(self.kept[i, b]),
                        }
                        for i, name in enumerate(names)
                    ],
                }
                for b, band in enumerate(bands)
            ],
        }


def _score(problem: LocalProblem, x: F64, data: BandData, errors: F64, weights: F64, counts: F64) -> None:
    """Add each block's weighted absolute disagreement under ``x`` to both images of its overlap."""
    for ob in data.overlaps:
        _, _, mean_res, spread_res = block_residuals(x, ob, problem.n_fields, data.scale)
        err = (np.abs(mean_res) + np.abs(spread_res)) / data.spread
        n = ob.weight**2
        for k in (ob.i, ob.j):
            errors[k] += float((err * n).sum())
            weights[k] += float(n.sum())
            counts[k] += err.size


def _validate_band(problem: LocalProblem, b: int) -> tuple[F64, F64, F64, F64]:
    """Summed held-out errors of band ``b`` (global, local), their pixel weights and scored blocks per image."""
    data = problem.band(b)
    n = problem.stats.n_images
    zero = np.zeros(problem.n_fields + 2 * n)
    g_err, weights, counts = np.zeros(n), np.zeros(n), np.zeros(n)
    l_err = np.zeros(n)
    _score(problem, zero, data, g_err, weights, counts)
    for fold in (0, 1):
        train = BandData([ob.subset(ob.fold != fold) for ob in data.overlaps], data.scale, data.spread)
        test = BandData([ob.subset(ob.fold == fold) for ob in data.overlaps], data.scale, data.spread)
        _score(problem, problem.solve(b, train), test, l_err, np.zeros(n), np.zeros(n))
    return g_err, l_err, weights, counts


def cross_validate(problem: LocalProblem) -> LocalValidation:
    """Two-fold held-out comparison of the local fields against the global model, per image and band.

    Each image's field is judged on its own held-out blocks (those of all its overlaps).

    Parameters
    ----------
    problem
        The run's local problem (statistics, global fit, extent and weights).

    Returns
    -------
    LocalValidation
        Errors, scored blocks and the per image and band decision.
    """
    results = per_band(lambda b: _validate_band(problem, b), problem.stats.n_bands)
    g_sum, l_sum, weights, counts = (np.stack([r[k] for r in results], axis=1) for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        global_error, local_error = g_sum / weights, l_sum / weights
        better = local_error < global_error
    blocks = counts.astype(np.int64)
    return LocalValidation(global_error, local_error, blocks, (blocks > 0) & better)
