"""The core solvers' choices and settings, free of numpy: methods, estimators, the local step's parameters.

Front ends (through :mod:`stacrrn.options`) read these types and defaults without importing the solvers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from stacrrn.errors import ParameterError

Method = Literal["global", "local", "global+local"]
"""The model: gain/offset per image and band, smooth gain fields on a block grid, or both."""
METHODS: tuple[Method, ...] = get_args(Method)

Estimator = Literal["spread", "orthogonal"]
"""Relative gain of each overlap in the global step: ratio of spreads, or orthogonal regression."""
ESTIMATORS: tuple[Estimator, ...] = get_args(Estimator)

QA_KINDS = ("qa_pixel", "scl", "clear")
"""Quality-asset kinds stacrrn decodes (:data:`stacrrn.core.masks.QA_DECODERS`), by their usual asset key."""

SAMPLE_EVERY = 4
"""Default of pass 2: fidelity measured on one row of SSIM windows (8 image rows) in every four.

The kernel is memory bound and cost about a quarter of pass 2 on every pixel (11.6 of
38.8 s in the 50-date benchmark); a quarter of the rows, spread over the whole image, moved
SSIM by 1.5e-4 and the after-means by 0.1 % on a 2048² benchmark date (``every=1``
measures every pixel).
"""

LocalExtent = Literal["overlaps", "image"]
LOCAL_EXTENTS: tuple[LocalExtent, ...] = get_args(LocalExtent)
"""Where the local step may correct: near the overlaps only (default) or across whole images."""


@dataclass(frozen=True)
class LocalParams:
    """Extent and weights of the local solve (dimensionless; defaults tested on real imagery).

    Attributes
    ----------
    extent
        ``overlaps`` (default): an image's field is supported by its overlaps with other
        images and is exactly 1 from ``decay`` blocks away from them, where no other image
        says anything (Yu et al.'s reference map leaves single-image blocks as the global
        step made them). ``image``: smooth fields across whole images, with constant shifts
        and alternation with the global step, for distortions that really are image-wide
        (vignetting, BRDF gradients across a swath).
    decay
        With ``extent="overlaps"``: distance in blocks from the nearest block with overlap
        evidence at which the field reaches 1 (and stays 1 beyond).
    cross_validate
        With ``extent="overlaps"``: keep an image's field in a band only where it predicts
        held-out overlap blocks better than the global model (two interleaved folds of overlap
        blocks). Fields across whole images are not cross-validated: what they are for, the
        correction far from any overlap, is exactly what no overlap block can check (and on
        the Sentinel-2 tuning tiles the check dropped coastal-band fields that fitted the
        truth better, because it scores them on top of the global step before alternation).
    membrane
        Weight of first differences of the log-gain field between neighbouring nodes.
    thin_plate
        Weight of second differences (curvature) of the log-gain field.
    ridge
        Weight pulling non-reference fields towards flat (with references) or 1 (without).
    reference_weight
        Weight holding reference fields at 1.
    min_fraction
        A block of an overlap is used when at least this share of the block is covered.
    iterations
        Maximum Gauss-Newton iterations (the rows are relinearized and reweighted at each).
    huber
        Huber threshold in robust (MAD) standard deviations of the block residuals; 0
        disables the reweighting (plain least squares).
    """

    extent: LocalExtent = "overlaps"
    decay: float = 2.0
    cross_validate: bool = True
    membrane: float = 0.3
    thin_plate: float = 1.0
    ridge: float = 0.01
    reference_weight: float = 1000.0
    min_fraction: float = 0.05
    iterations: int = 8
    huber: float = 1.345

    @property
    def validated(self) -> bool:
        """Whether fields are cross-validated: asked for, and bounded to the overlaps."""
        return self.cross_validate and self.extent == "overlaps"

    def __post_init__(self) -> None:
        """Reject an unknown extent or a decay that is not a finite number of blocks >= 1.

        Raises
        ------
        ParameterError
            For an unknown ``extent`` or a ``decay`` below 1 block or not finite.
        """
        if self.extent not in LOCAL_EXTENTS:
            raise ParameterError(f"unknown --local-extent {self.extent!r}; choose one of {', '.join(LOCAL_EXTENTS)}")
        if not (isinstance(self.decay, int | float) and math.isfinite(self.decay) and self.decay >= 1):
            raise ParameterError(f"--local-decay must be a finite number of blocks >= 1, got {self.decay!r}")


@dataclass(frozen=True)
class SpectralPifThresholds:
    """NDVI and brightness limits of spectrally stable pixels (reflectance units).

    Defaults select sparsely vegetated, moderately bright surfaces (rock, soil, built-up,
    roads: the classic PIFs of Schott et al. 1988) and leave out vegetation, whose
    phenology changes between dates (NDVI above ``ndvi_max``), water and shadow (NIR
    below ``nir_min``), and cloud, snow and saturated pixels (NIR above ``nir_max``).
    """

    ndvi_min: float = -0.1
    ndvi_max: float = 0.3
    nir_min: float = 0.08
    nir_max: float = 0.5
