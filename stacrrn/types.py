"""Small frozen value types shared by every layer (no I/O, no third-party imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle ``[row0, row1) x [col0, col1)`` on some grid."""

    row0: int
    col0: int
    row1: int
    col1: int

    @property
    def height(self) -> int:
        """Number of rows (0 when empty)."""
        return max(0, self.row1 - self.row0)

    @property
    def width(self) -> int:
        """Number of columns (0 when empty)."""
        return max(0, self.col1 - self.col0)

    @property
    def empty(self) -> bool:
        """True when the box holds no pixel."""
        return self.height == 0 or self.width == 0

    def intersect(self, other: Box) -> Box:
        """Return the intersection of two boxes (possibly empty)."""
        return Box(
            max(self.row0, other.row0),
            max(self.col0, other.col0),
            min(self.row1, other.row1),
            min(self.col1, other.col1),
        )

    def shift(self, drow: int, dcol: int) -> Box:
        """Return the box translated by ``(drow, dcol)``."""
        return Box(self.row0 + drow, self.col0 + dcol, self.row1 + drow, self.col1 + dcol)

    def grow(self, pad: int, within: Box) -> Box:
        """Return the box grown by ``pad`` pixels on every side, clipped to ``within``."""
        return Box(self.row0 - pad, self.col0 - pad, self.row1 + pad, self.col1 + pad).intersect(within)

    def to_list(self) -> list[int]:
        """Serialize as ``[row0, col0, row1, col1]``."""
        return [self.row0, self.col0, self.row1, self.col1]

    @classmethod
    def from_list(cls, values: list[int]) -> Box:
        """Inverse of :meth:`to_list`."""
        return cls(*(int(v) for v in values))


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS (WKT or ``EPSG:n``), affine transform and shape.

    ``transform`` holds the six GDAL-order coefficients ``(a, b, c, d, e, f)`` of
    ``x = a*col + b*row + c``, ``y = d*col + e*row + f``.
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` as positive numbers."""
        return abs(self.transform[0]), abs(self.transform[4])

    @property
    def box(self) -> Box:
        """The whole grid as a :class:`Box`."""
        return Box(0, 0, self.height, self.width)

    def window(self, box: Box) -> Grid:
        """The grid of the pixels in ``box`` (same CRS and pixel size)."""
        a, b, c, d, e, f = self.transform
        origin = (c + a * box.col0 + b * box.row0, f + d * box.col0 + e * box.row0)
        return Grid(self.crs, (a, b, origin[0], d, e, origin[1]), box.width, box.height)

    def to_dict(self) -> dict[str, Any]:
        """Serialize to plain JSON types."""
        return {
            "crs": self.crs,
            "transform": list(self.transform),
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        """Inverse of :meth:`to_dict`."""
        t = tuple(float(v) for v in d["transform"])
        return cls(str(d["crs"]), (t[0], t[1], t[2], t[3], t[4], t[5]), int(d["width"]), int(d["height"]))


@dataclass(frozen=True)
class BlockGrid:
    """A block grid laid over a :class:`Grid`, blocks of ``block_height x block_width`` pixels.

    Block ``(r, c)`` covers grid rows ``[r*block_height, (r+1)*block_height)``; its node,
    where local correction values live, sits at the block centre.
    """

    block_height: int
    block_width: int
    n_rows: int
    n_cols: int

    @classmethod
    def over(cls, grid: Grid, block_height: int, block_width: int) -> BlockGrid:
        """Cover ``grid`` with blocks of the given pixel size."""
        if block_height < 1 or block_width < 1:
            raise ValueError("block size must be at least one pixel")
        return cls(
            block_height,
            block_width,
            math.ceil(grid.height / block_height),
            math.ceil(grid.width / block_width),
        )

    def blocks_of(self, box: Box) -> Box:
        """Return the box of block indices touched by a pixel box."""
        if box.empty:
            return Box(0, 0, 0, 0)
        return Box(
            box.row0 // self.block_height,
            box.col0 // self.block_width,
            (box.row1 - 1) // self.block_height + 1,
            (box.col1 - 1) // self.block_width + 1,
        )

    def to_dict(self) -> dict[str, int]:
        """Serialize to plain JSON types."""
        return {
            "block_height": self.block_height,
            "block_width": self.block_width,
            "n_rows": self.n_rows,
            "n_cols": self.n_cols,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockGrid:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["block_height"]), int(d["block_width"]), int(d["n_rows"]), int(d["n_cols"]))
