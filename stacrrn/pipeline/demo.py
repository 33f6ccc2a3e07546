"""The embedded default job: normalize a sample mosaic stacrrn generates, and score it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray

from stacrrn.core.metrics import affine_residual
from stacrrn.pipeline.match import MatchResult, match
from stacrrn.pipeline.progress import Progress, no_progress
from stacrrn.samples import SampleMosaic, write_sample_mosaic


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and how close it came to the known truth.

    Attributes
    ----------
    sample
        The generated tiles and their injected distortions.
    result
        The normalization run.
    gain_error
        Max relative error of the recovered gains (``None`` with gradients, where the
        gain is not one number per tile).
    truth_error
        Per-band pixel RMSE to the truth after one common affine fit, over the truth's std.
    """

    sample: SampleMosaic
    result: MatchResult
    gain_error: float | None
    truth_error: NDArray[np.float64]


def run_demo(folder: Path, gradient: float = 0.0, workers: int = 2, progress: Progress = no_progress) -> DemoResult:
    """Write a 3x3 sample mosaic into ``folder/scenes``, normalize it into ``folder/normalized``.

    Parameters
    ----------
    folder
        Working folder.
    gradient
        Planar gradient amplitude per tile (0: gains/offsets only, solved with ``global``;
        otherwise ``global+local``).
    workers
        Threads for the pixel passes.
    progress
        Progress callback.

    Returns
    -------
    DemoResult
        The run and its scores against the truth.
    """
    sample = write_sample_mosaic(folder / "scenes", gradient=gradient)
    result = match(
        [str(p) for p in sample.paths],
        folder / "normalized",
        references=[sample.reference],
        method="global+local" if gradient else "global",
        workers=workers,
        progress=progress,
    )
    gains = result.model.global_fit.gains
    gain_error = None if gradient else float(np.abs(gains * sample.gains - 1).max())
    outs, truths = [], []
    for out, truth in zip(result.outputs, sample.truth, strict=True):
        with rasterio.open(out.path) as src:
            outs.append(src.read().reshape(src.count, -1).astype(np.float64))
        truths.append(truth.reshape(truth.shape[0], -1))
    _, rel = affine_residual(np.concatenate(outs, axis=1), np.concatenate(truths, axis=1))
    return DemoResult(sample, result, gain_error, rel)
