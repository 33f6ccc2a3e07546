"""Checks of a run's inputs made before pass 1 reads a pixel.

Headers say everything these checks need: data types, nodata values and footprints. A run
that would fail on them fails here, before it writes anything, with a message that says how
to fix the input. Missing CRSs, unreadable files, band counts and block sizes are checked
where the headers and grids are read (:func:`stacrrn.io.raster.open_raster`,
:func:`stacrrn.io.raster.check_bands`, :func:`stacrrn.io.grid.block_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from stacrrn.errors import DataTypeError, DisconnectedError, NodataError
from stacrrn.io.raster import RasterInfo
from stacrrn.types import Box

SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
"""Data types stacrrn reads and writes (GDAL's real-valued types up to 32-bit integers)."""


def check_dtype(info: RasterInfo) -> None:
    """Refuse data types stacrrn cannot normalize (complex, 64-bit integers).

    Raises
    ------
    DataTypeError
        Naming the raster, its type and the supported ones.
    """
    if info.dtype not in SUPPORTED_DTYPES:
        raise DataTypeError(
            f"{info.path} holds {info.dtype} pixels; stacrrn normalizes {', '.join(SUPPORTED_DTYPES)}: convert it "
            "first, e.g. `gdal_translate -ot Float32`"
        )


def check_nodata(info: RasterInfo) -> None:
    """Refuse a nodata value the raster's data type cannot hold (it would match no pixel, or the wrong ones).

    Raises
    ------
    NodataError
        For a NaN, fractional or out-of-range nodata on an integer raster.
    """
    nodata, dtype = info.nodata, np.dtype(info.dtype)
    if nodata is None or dtype.kind == "f":
        return
    limits = np.iinfo(dtype)
    if not math.isfinite(nodata) or nodata != round(nodata) or not limits.min <= nodata <= limits.max:
        raise NodataError(
            f"{info.path}: nodata {nodata:g} is not a {info.dtype} value ({limits.min}..{limits.max}); set the "
            f"right one, e.g. `rio edit-info --nodata {max(limits.min, 0)} {info.path}`"
        )


def check_same_dtype(labelled: Iterable[tuple[str, RasterInfo]]) -> None:
    """Refuse inputs that mix data types for the same band (e.g. uint16 counts and float reflectance).

    Parameters
    ----------
    labelled
        ``(band or asset label, raster)`` pairs: rasters with the same label must share a type.

    Raises
    ------
    DataTypeError
        Naming one raster of each type.
    """
    seen: dict[str, dict[str, str]] = {}
    for label, info in labelled:
        kinds = seen.setdefault(label, {})
        kinds.setdefault(info.dtype, info.path)
        if len(kinds) > 1:
            (a, pa), (b, pb) = list(kinds.items())[:2]
            raise DataTypeError(
                f"inputs mix data types{'' if not label else f' for {label}'}: {pa} is {a}, {pb} is {b}; "
                "normalize images of one type and unit (convert with `gdal_translate -ot`, rescaling if needed)"
            )


def check_rasters(labelled: Sequence[tuple[str, RasterInfo]]) -> None:
    """Data type and nodata checks of every input raster (see the functions above)."""
    for _, info in labelled:
        check_dtype(info)
        check_nodata(info)
    check_same_dtype(labelled)


def footprint_pairs(footprints: Sequence[Box]) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of footprints that share at least one pixel."""
    return {
        (i, j)
        for i in range(len(footprints))
        for j in range(i + 1, len(footprints))
        if not footprints[i].intersect(footprints[j]).empty
    }


def check_connected(names: Sequence[str], pairs: Iterable[tuple[int, int]], references: Sequence[int] = ()) -> None:
    """Refuse an overlap graph that falls apart into groups of images without a common reference.

    Images in different groups share no pixel, so nothing makes them agree; each group would
    be normalized towards its own central tendency. A group is fine if it is the only group
    of two or more images, or if it holds a reference image. An image that overlaps nothing
    is kept unchanged (a warning, not an error).

    Raises
    ------
    DisconnectedError
        Listing the groups and how to anchor or split them.
    """
    n = len(names)
    edges = list(pairs)
    rows = [i for i, _ in edges]
    cols = [j for _, j in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    linked = [g for g in groups.values() if len(g) > 1]
    loose = [g for g in linked if not set(g) & set(references)]
    if len(linked) > 1 and loose:
        shown = " | ".join(", ".join(names[i] for i in g[:4]) + (", ..." if len(g) > 4 else "") for g in linked[:4])
        example = ", ".join(names[g[0]] for g in loose[:2])
        raise DisconnectedError(
            f"the images form {len(linked)} groups that do not overlap each other ({shown}); normalize each group "
            f"in its own run, or anchor every group with a --reference (e.g. {example})"
        )


def check_plan_graph(
    names: Sequence[str], footprints: Sequence[Box], pairs: Iterable[tuple[int, int]] | None, references: Sequence[int]
) -> None:
    """:func:`check_connected` on the pairs a run will compare: overlapping footprints (of ``pairs``, if given)."""
    overlapping = footprint_pairs(footprints)
    check_connected(names, overlapping if pairs is None else overlapping & set(pairs), references)
