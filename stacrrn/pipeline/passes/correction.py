"""A model's correction of images on any grid, one window at a time: the pixels of pass 2's files.

:class:`Correction` holds the model's parameters in the order of the images and bands of some
data (an xarray object, a datacube), and corrects a window of one image as pass 2 corrects a
window of a file (:func:`~stacrrn.pipeline.passes.apply.correct_raster`): the image's gain and
offset, its local gain field evaluated at the window's pixel centres mapped onto the model's
grid, in strips of :data:`~stacrrn.pipeline.passes.apply.STRIP_ROWS` rows aligned on the data's
grid, then :func:`~stacrrn.core.correct.cast` to the source data type. Data on a file's own grid
get that file's pixels, bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from stacrrn.core.correct import cast, correct
from stacrrn.core.fields import FieldStrip, window_field
from stacrrn.core.local_model import LocalFit
from stacrrn.core.model import RRNModel
from stacrrn.io.grid import native_to_grid
from stacrrn.pipeline.passes.apply import STRIP_ROWS
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]

MODEL_ATTR = "rrn:model"
"""Attribute of corrected data (xarray objects, Zarr stores) holding the digest of the model."""
METHOD_ATTR = "rrn:method"
"""Attribute of corrected data holding the model's method."""

OutputType = Literal["float", "float32", "source"]
"""Data type of the corrected data: float64 or float32 with NaN where invalid, or the source's
(rounded, clipped and never nodata where valid, as the files of pass 2)."""
OUTPUT_TYPES: tuple[OutputType, ...] = ("float", "float32", "source")


def output_dtype(source: np.dtype[Any], output: OutputType) -> np.dtype[Any]:
    """The data type of corrected data of type ``source`` as ``output`` asks."""
    return source if output == "source" else np.dtype(np.float64 if output == "float" else np.float32)


def strips(row0: int, row1: int, rows: int = STRIP_ROWS) -> list[tuple[int, int]]:
    """Rows ``[row0, row1)`` cut at multiples of ``rows`` (the strips of pass 2's windows)."""
    cuts = [row0, *range((row0 // rows + 1) * rows, row1, rows), row1]
    return list(itertools.pairwise(cuts))


@dataclass(frozen=True)
class Correction:
    """The model's correction of the data's images and bands, ready for one window at a time.

    Attributes
    ----------
    gains, offsets
        ``(steps, bands)``: each image's global parameters, in the data's order.
    shifts
        ``(steps, bands)`` additive terms of the local step, or ``None``.
    local, images
        The local fields and each step's image index in them (``None`` without a local step).
    grid, model_grid
        The data's grid and the model's (fields live on the model's).
    nodata
        Each band's nodata value (``None``: only NaN is invalid).
    output
        See :data:`OutputType`.
    """

    gains: F64
    offsets: F64
    shifts: F64 | None
    local: LocalFit | None
    images: tuple[int, ...]
    grid: Grid
    model_grid: Grid
    nodata: tuple[float | None, ...]
    output: OutputType

    @classmethod
    def of(
        cls,
        model: RRNModel,
        images: Sequence[int],
        grid: Grid,
        nodata: Sequence[float | None],
        output: OutputType,
    ) -> Correction:
        """The correction of model images ``images`` (one per step of the data), on ``grid``."""
        index = list(images)
        g, local = model.global_fit, model.local_fit
        shifts = None if local is None else local.shifts[index]
        return cls(
            g.gains[index], g.offsets[index], shifts, local, tuple(index), grid, model.grid, tuple(nodata), output
        )

    def field(self, step: int, bands: Sequence[int], box: Box) -> FieldStrip | None:
        """Step ``step``'s gain field for ``bands`` over the pixels of ``box``, strip by strip (rows of ``box``)."""
        local = self.local
        if local is None:
            return None
        m = self.images[step]
        rows, cols = native_to_grid(self.grid, self.model_grid, box)
        return window_field(local.fields[m][list(bands)], rows, cols, local.blocks, local.frames[m])

    def window(
        self,
        values: NDArray[Any],
        valid: Mask,
        step: int,
        bands: Sequence[int],
        box: Box,
        dtype: np.dtype[Any],
        clipped: NDArray[np.int64] | None = None,
    ) -> NDArray[Any]:
        """Corrected ``values`` ``(bands, rows, cols)`` of step ``step`` over ``box``, as ``dtype``.

        ``valid`` (same shape) says which values are data; the others come out NaN, or nodata
        as pass 2 writes it with ``output="source"``. ``clipped`` (one count per band), if
        given, receives the number of values clipped to the source data type.
        """
        b = list(bands)
        gain, offset = self.gains[step, b], self.offsets[step, b]
        shift = None if self.shifts is None else self.shifts[step, b]
        out = np.empty(values.shape, dtype=dtype)
        field_of = self.field(step, b, box)
        for r0, r1 in strips(box.row0, box.row1):
            rows = slice(r0 - box.row0, r1 - box.row0)
            field = None if field_of is None else field_of(rows)
            corrected = correct(values[:, rows], gain, offset, field, shift)
            out[:, rows] = self.cast(corrected, valid[:, rows], values[:, rows], b, dtype, clipped)
        return out

    def cast(
        self,
        corrected: F64,
        valid: Mask,
        original: NDArray[Any],
        bands: Sequence[int],
        dtype: np.dtype[Any],
        clipped: NDArray[np.int64] | None = None,
    ) -> NDArray[Any]:
        """Corrected values in the output type: NaN where invalid, or cast as pass 2 casts them."""
        if self.output != "source":
            return np.where(valid, corrected, np.nan).astype(dtype)
        out = np.empty(corrected.shape, dtype=dtype)
        for j, k in enumerate(bands):
            result = cast(corrected[j : j + 1], valid[j : j + 1], dtype, self.nodata[k], original[j : j + 1])
            out[j] = result.data[0]
            if clipped is not None:
                clipped[j] += result.clipped[0]
        return out
