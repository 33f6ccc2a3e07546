"""Pass-2 kernel: correct pixel values and cast them back to the input's data type.

Values outside the data type's range are clipped and counted. A valid pixel never
becomes the nodata value: where rounding or clipping lands on it, the pixel moves one
step (one integer, or one ulp for floats) away from nodata towards its corrected value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class CastResult:
    """Output pixels plus how many values were clipped and moved off nodata, per band."""

    data: NDArray[np.generic]
    clipped: NDArray[np.int64]
    moved_off_nodata: NDArray[np.int64]


def correct(
    values: NDArray[np.generic],
    gain: F64,
    offset: F64,
    field: NDArray[np.floating[Any]] | None = None,
    shift: F64 | None = None,
    out: F64 | None = None,
) -> F64:
    """Apply ``field * gain * values + offset + shift`` band-wise.

    Parameters
    ----------
    values
        Pixel values, shape ``(bands, ...)``, of any numeric type (converted to float64 on
        the way, without a copy of their own).
    gain, offset
        Per-band global parameters, shape ``(bands,)``.
    field
        Optional per-pixel multiplicative local field, same shape as ``values`` (float32 or float64).
    shift
        Optional per-band additive term of the local step, shape ``(bands,)``.
    out
        Optional float64 array of ``values``' shape receiving the result (``values`` itself
        corrects in place).

    Returns
    -------
    numpy.ndarray
        Corrected values in float64 (``out`` when given).
    """
    shape = (-1,) + (1,) * (values.ndim - 1)
    result: F64 = np.multiply(values, gain.reshape(shape), out=out, dtype=np.float64)
    if field is not None:
        result *= field
    result += offset.reshape(shape) if shift is None else (offset + shift).reshape(shape)
    return result


def _dtype_range(dtype: np.dtype[np.generic]) -> tuple[float, float]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)  # type: ignore[type-var]
        return float(info.min), float(info.max)
    finfo = np.finfo(dtype)  # type: ignore[type-var]
    return float(finfo.min), float(finfo.max)


def _extremes(values: F64) -> tuple[F64, F64]:
    """Per-band minimum and maximum of ``values``, after setting NaN and infinities to 0 in place."""
    axes = tuple(range(1, values.ndim))
    low, high = values.min(axis=axes), values.max(axis=axes)  # NaN or an infinity shows in these
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        values[~np.isfinite(values)] = 0.0
        low, high = values.min(axis=axes), values.max(axis=axes)
    return low, high


def _move_off_nodata(
    out: NDArray[np.generic], up: NDArray[np.bool_], valid: NDArray[np.bool_], nodata: float
) -> NDArray[np.int64]:
    """Move valid values cast onto ``nodata`` one step (integers) or one ulp away, up where ``up``.

    Returns how many moved, per band.
    """
    hits = (out == nodata) & valid
    if not hits.any():
        return np.zeros(out.shape[0], dtype=np.int64)
    dt = out.dtype
    if np.issubdtype(dt, np.integer):
        out[hits] = np.where(up, nodata + 1, nodata - 1)[hits].astype(dt)
    else:
        away = np.nextafter(np.asarray(nodata, dt), np.where(up, np.inf, -np.inf).astype(dt))
        out[hits] = away[hits]
    counts: NDArray[np.int64] = hits.reshape(hits.shape[0], -1).sum(axis=1, dtype=np.int64)
    return counts


def _may_hold(value: float, low: F64, high: F64, lo: float, hi: float, dt: np.dtype[np.generic]) -> bool:
    """Whether a band's cast values, between ``low`` and ``high`` before clipping to ``[lo, hi]``, can be ``value``.

    Clipping and the cast round monotonically, so the cast values of a band lie between its
    cast extremes.
    """
    least = np.clip(low, lo, hi).astype(dt)
    most = np.clip(high, lo, hi).astype(dt)
    return bool(np.any((least <= value) & (value <= most)))


def cast(
    corrected: F64,
    valid: NDArray[np.bool_],
    dtype: DTypeLike,
    nodata: float | None,
    original: NDArray[np.generic] | None = None,
    into: NDArray[np.generic] | None = None,
) -> CastResult:
    """Round (integers), clip and cast corrected values; invalid pixels get ``nodata``.

    Parameters
    ----------
    corrected
        Corrected values, shape ``(bands, rows, cols)``; rounded and clipped in place (no
        copy: this kernel is memory bound), so their values are lost.
    valid
        Validity mask, ``(rows, cols)`` or per band ``(bands, rows, cols)``; invalid pixels
        are written as ``nodata``.
    dtype
        Output data type.
    nodata
        The nodata value, or ``None`` when the data has none.
    original
        The input values; without nodata, invalid pixels (NaN, masked) keep them.
    into
        An array of ``corrected``'s shape and of type ``dtype`` that receives the output
        (default a new one).

    Returns
    -------
    CastResult
        The cast array and per-band counts of clipped and nodata-avoiding pixels.
    """
    dt = np.dtype(dtype)
    valid = np.broadcast_to(valid, corrected.shape)
    all_valid = bool(valid.all())
    lo, hi = _dtype_range(dt)
    integer = np.issubdtype(dt, np.integer)
    low, high = _extremes(corrected)
    if integer:  # rounding is monotonic: these are the extremes of the rounded values
        low, high = np.rint(low), np.rint(high)
    up = None  # which way a value cast to nodata moves off it: decided on the values before rounding
    if nodata is not None and not np.isnan(nodata) and _may_hold(nodata, low, high, lo, hi, dt):
        up = (corrected >= nodata) & (nodata < hi) | (nodata <= lo)
    vals = np.rint(corrected, out=corrected) if integer else corrected
    clipped = np.zeros(vals.shape[0], dtype=np.int64)
    outside = (low < lo) | (high > hi)  # most windows need no clipping
    for b in np.flatnonzero(outside):
        clipped[b] = np.count_nonzero(((vals[b] < lo) | (vals[b] > hi)) & valid[b])
        np.clip(vals[b], lo, hi, out=vals[b])
    if into is None:
        out = vals.astype(dt)
    else:
        if into.dtype != dt or into.shape != vals.shape:
            raise ValueError(f"cast into a {into.dtype} array of shape {into.shape}, not {dt} {vals.shape}")
        out = into
        np.copyto(out, vals, casting="unsafe")  # vals are rounded and clipped: the cast is exact
    moved = np.zeros(vals.shape[0], dtype=np.int64)
    if up is not None and nodata is not None:
        moved = _move_off_nodata(out, up, valid, nodata)
    if not all_valid and nodata is not None:
        np.copyto(out, np.asarray(nodata).astype(dt), where=~valid)
    elif not all_valid and original is not None:
        np.copyto(out, np.broadcast_to(original, out.shape), where=~valid)
    return CastResult(out, clipped.astype(np.int64), moved.astype(np.int64))
