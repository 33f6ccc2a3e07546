"""Seamlines of a plan's images: valid-data footprints from a coarse read, and their partition.

The images are read once on a coarse *seam grid* (same CRS, at most :data:`SEAM_PIXELS` on
its longer side; odc-stac and GDAL read overviews there), which gives each image's
valid-data footprint and the distance-transform partition of their union
(:mod:`stacrrn.core.seamlines`). Each image keeps its signed distance to its region's
boundary on a crop of the seam grid, from which the mosaic interpolates blending weights at
full resolution chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import shapely
from numpy.typing import NDArray

from stacrrn.core.seamlines import (
    Labels,
    bilinear_on_lattice,
    in_batches,
    least_cost_seams,
    partition,
    signed_distance,
)
from stacrrn.core.statistics import Layer
from stacrrn.errors import InputError, ParameterError
from stacrrn.io.vectors import Feature, polygonize
from stacrrn.options import SEAM_MODES
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.types import Box, Grid

F64 = NDArray[np.float64]

SEAM_PIXELS = 2048
"""Longer side (pixels) of the seam grid at most."""


@dataclass(frozen=True)
class Seams:
    """Seamlines of a set of images on a coarse seam grid.

    Attributes
    ----------
    names
        Image names, in plan order.
    grid
        The seam grid.
    labels
        Region of every seam-grid pixel (image index, -1 where none).
    crops, signed
        Per image: its box on the seam grid (footprint plus a margin) and its signed distance
        (seam-grid pixels) to its region's boundary there.
    footprints
        Valid-data polygons per image (seam-grid precision, simplified), in the grid's CRS.
    regions
        Seam polygon per image (``None`` for an image that shows nowhere).
    priority
        Priority of each image.
    """

    names: list[str]
    grid: Grid
    labels: Labels
    crops: list[Box]
    signed: list[F64]
    footprints: list[shapely.Geometry]
    regions: list[shapely.Geometry | None]
    priority: list[float]

    def signed_at(self, i: int, fine: Grid, box: Box) -> F64:
        """Image ``i``'s signed distance, in pixels of ``fine``, at the centres of ``box`` of ``fine``."""
        a, _, c, _, e, f = fine.transform
        sa, _, sc, _, se, sf = self.grid.transform
        cols = ((c + a * (np.arange(box.col0, box.col1) + 0.5)) - sc) / sa - 0.5 - self.crops[i].col0
        rows = ((f + e * (np.arange(box.row0, box.row1) + 0.5)) - sf) / se - 0.5 - self.crops[i].row0
        far = -float(self.labels.shape[0] + self.labels.shape[1])
        values = bilinear_on_lattice(self.signed[i], rows.astype(np.float64), cols.astype(np.float64), far)
        return np.asarray(values * (abs(sa) / abs(a)), dtype=np.float64)

    def features(self) -> list[Feature]:
        """Seam polygons with their image, priority and area, for the vector outputs."""
        return [
            (region, {"image": name, "priority": p, "area": float(region.area)})
            for name, region, p in zip(self.names, self.regions, self.priority, strict=True)
            if region is not None
        ]

    def footprint_features(self) -> list[Feature]:
        """Valid-data footprints with their image, for the vector outputs."""
        return [(fp, {"image": name}) for name, fp in zip(self.names, self.footprints, strict=True) if not fp.is_empty]


def seam_pixel_size(grid: Grid, max_pixels: int = SEAM_PIXELS) -> float:
    """Pixel size of the seam grid: the plan's, times the factor that fits ``max_pixels``."""
    factor = max(1, math.ceil(max(grid.width, grid.height) / max_pixels))
    return max(grid.resolution) * factor


def priorities(names: Sequence[str], given: Mapping[str, float] | None) -> list[float]:
    """Priority per image (default 1).

    Raises
    ------
    ParameterError
        For a name that is not an input or a priority that is not positive.
    """
    given = dict(given or {})
    for name, value in given.items():
        if name not in names:
            raise ParameterError(f"--priority {name}=...: {name!r} is not one of the inputs ({', '.join(names)})")
        if not value > 0:
            raise ParameterError(f"--priority {name}={value}: priorities must be positive")
    return [float(given.get(n, 1.0)) for n in names]


class _Disagreement:
    """Running per-pixel spread of the images' values on the seam grid (mean over bands of the std)."""

    def __init__(self, shape: tuple[int, int], n_bands: int) -> None:
        self.n = np.zeros(shape, dtype=np.float32)
        self.s1 = np.zeros((n_bands, *shape), dtype=np.float32)
        self.s2 = np.zeros((n_bands, *shape), dtype=np.float32)
        self.scale: F64 | None = None

    def add(self, box: Box, values: F64, valid: NDArray[np.bool_]) -> None:
        if self.scale is None:  # one scale per band for all images (they are normalized already)
            self.scale = np.maximum(np.array([np.std(b[valid]) if valid.any() else 1.0 for b in values]), 1e-12)
        z = np.where(valid, values / self.scale[:, None, None], 0.0).astype(np.float32)
        rows, cols = slice(box.row0, box.row1), slice(box.col0, box.col1)
        self.n[rows, cols] += valid
        self.s1[:, rows, cols] += z
        self.s2[:, rows, cols] += z * z

    def spread(self) -> F64:
        n = np.maximum(self.n, 1)
        var = np.maximum(self.s2 / n - (self.s1 / n) ** 2, 0)
        return np.asarray(np.where(self.n >= 2, np.sqrt(var).mean(axis=0), 0.0), dtype=np.float64)


class CroppedMasks(Sequence[NDArray[np.bool_]]):
    """Masks of the whole seam grid, each kept only over its image's footprint and built when asked.

    A thousand small scenes on a 2048² seam grid would otherwise hold 4 MB of mask each.
    """

    def __init__(self, shape: tuple[int, int], boxes: Sequence[Box], crops: Sequence[NDArray[np.bool_]]) -> None:
        self.shape, self.boxes, self.crops = shape, list(boxes), list(crops)

    def __len__(self) -> int:
        return len(self.crops)

    @overload
    def __getitem__(self, k: int) -> NDArray[np.bool_]: ...

    @overload
    def __getitem__(self, k: slice) -> list[NDArray[np.bool_]]: ...

    def __getitem__(self, k: int | slice) -> NDArray[np.bool_] | list[NDArray[np.bool_]]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        full = np.zeros(self.shape, dtype=bool)
        box = self.boxes[k]
        full[box.row0 : box.row1, box.col0 : box.col1] = self.crops[k]
        return full


def _valid_on(coarse: Plan, spread: _Disagreement | None, workers: int) -> CroppedMasks:
    """Every image's valid pixels on the seam grid, read ``workers`` images at a time.

    The disagreement of least-cost seams accumulates the values in this thread, in image order.
    """

    def read(i: int) -> Layer | None:
        box = coarse.footprints[i]
        return None if box.empty else coarse.read_chunk(box, [i])[i]

    crops = []
    for i, layer in enumerate(in_batches(read, range(len(coarse.names)), workers)):
        box = coarse.footprints[i]
        crop = np.zeros((max(box.height, 0), max(box.width, 0)), dtype=bool)
        if layer is not None:
            values, crop = layer
            if spread is not None:
                spread.add(box, values, crop)
        crops.append(crop)
    return CroppedMasks((coarse.grid.height, coarse.grid.width), coarse.footprints, crops)


def check_seam_options(mode: str, corridor: int) -> None:
    """Raise :class:`ParameterError` for an unknown seam mode or a corridor below 1."""
    if mode not in SEAM_MODES:
        raise ParameterError(f"unknown --seams {mode!r}; choose one of {', '.join(SEAM_MODES)}")
    if corridor < 1:
        raise ParameterError(f"--seam-corridor must be at least 1 seam-grid pixel, got {corridor}")


def compute_seams(
    coarse: Plan,
    priority: Sequence[float],
    margin: int = 4,
    mode: str = "center",
    corridor: int = 16,
    workers: int = 1,
) -> Seams:
    """Footprints and seamlines of the images of ``coarse`` (a plan on the seam grid).

    Parameters
    ----------
    coarse
        The images on the seam grid.
    priority
        Weight of each image's distances (see :func:`stacrrn.core.seamlines.partition`).
    margin
        Seam-grid pixels kept around each footprint for the signed distances.
    mode
        ``center`` (distance-transform centre lines) or ``least-cost`` (each two-image seam
        moved, within ``corridor`` seam-grid pixels, onto the cheapest cut through the
        images' disagreement, so that it avoids buildings, roads, clouds and changes).
    corridor
        Half-width of the band a least-cost seam may move in (seam-grid pixels).
    workers
        Images read, and distance transforms computed, at once.

    Raises
    ------
    InputError
        If an image has no valid pixel at the seam grid's resolution.
    ParameterError
        For an unknown mode or a corridor below 1.
    """
    check_seam_options(mode, corridor)
    shape = (coarse.grid.height, coarse.grid.width)
    spread = _Disagreement(shape, len(coarse.bands)) if mode == "least-cost" else None
    valid = _valid_on(coarse, spread, workers)
    for name, v in zip(coarse.names, valid.crops, strict=True):
        if not v.any():
            raise InputError(f"{name} has no valid pixel at the seam grid's resolution; remove it from the inputs")
    labels = partition(valid, coarse.names, priority, workers)
    if spread is not None:
        labels = least_cost_seams(labels, valid, spread.spread(), corridor)
    tolerance = max(coarse.grid.resolution)
    crops = [
        Box(fp.row0 - margin, fp.col0 - margin, fp.row1 + margin, fp.col1 + margin).intersect(coarse.grid.box)
        for fp in coarse.footprints
    ]

    def inside(i: int) -> F64:
        crop = crops[i]
        return signed_distance(labels[crop.row0 : crop.row1, crop.col0 : crop.col1], i)

    signed = list(in_batches(inside, range(len(valid)), workers))
    footprints = []
    for k, crop in enumerate(crops):  # in this thread: rasterio warns about GDAL datasets in others
        inner = valid[k][crop.row0 : crop.row1, crop.col0 : crop.col1]
        labelled = inner.astype(np.int32) - (~inner).astype(np.int32)
        shape = polygonize(labelled, coarse.grid.window(crop)).get(1, shapely.Polygon())
        footprints.append(shapely.simplify(shape, tolerance))
    regions = polygonize(labels, coarse.grid)
    return Seams(
        list(coarse.names),
        coarse.grid,
        labels,
        crops,
        signed,
        footprints,
        [regions.get(i) for i in range(len(valid))],
        list(priority),
    )
