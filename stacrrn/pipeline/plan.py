"""Planning a run: inputs, common grid, footprints, block grid and chunks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from stacrrn.errors import InputError, ParameterError
from stacrrn.io.grid import block_grid, chunks, common_grid, footprint
from stacrrn.io.raster import RasterInfo, check_bands, open_raster
from stacrrn.types import BlockGrid, Box, Grid

DEFAULT_CHUNK = 1024
"""Edge of the square chunks (common-grid pixels) processed as one task."""


@dataclass(frozen=True)
class Plan:
    """What a run reads and how: the inputs on a common grid, cut into chunks."""

    infos: list[RasterInfo]
    bands: list[int]
    grid: Grid
    blocks: BlockGrid
    footprints: list[Box]
    chunks: list[Box]

    @property
    def names(self) -> list[str]:
        """Image names (file stems), unique within a run."""
        return [info.name for info in self.infos]

    def images_in(self, box: Box) -> list[int]:
        """Indices of the images whose footprint meets ``box``."""
        return [i for i, fp in enumerate(self.footprints) if not fp.intersect(box).empty]

    def fingerprint(self) -> str:
        """Hash of everything pass 1 depends on (inputs' identity, bands, grids)."""
        inputs = []
        for info in self.infos:
            try:
                st = os.stat(info.path)
                ident: list[object] = [info.path, st.st_size, st.st_mtime_ns]
            except OSError:
                ident = [info.path]
            inputs.append(ident)
        payload = {
            "inputs": inputs,
            "bands": self.bands,
            "grid": self.grid.to_dict(),
            "blocks": self.blocks.to_dict(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def make_plan(
    paths: Sequence[str | os.PathLike[str]],
    bands: Sequence[int] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    block_size: float | None = None,
    n_blocks: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> Plan:
    """Open the inputs and lay out the common grid, block grid and chunks.

    Parameters
    ----------
    paths
        Input rasters (at least two).
    bands
        1-based band indexes to normalize (default: all; counts must then match).
    crs, resolution
        Common grid CRS and pixel size (default: first input's CRS, finest resolution).
    block_size, n_blocks
        Block grid of the local step, in CRS units or blocks along the longer side.
    chunk_size
        Chunk edge in common-grid pixels.

    Returns
    -------
    Plan
        The run's layout.

    Raises
    ------
    InputError
        For fewer than two inputs, duplicate names, or any unreadable input.
    """
    if len(paths) < 2:
        raise InputError("normalization needs at least two overlapping images; got " + str(len(paths)))
    if chunk_size < 16:
        raise ParameterError(f"chunk size must be at least 16 pixels, got {chunk_size}")
    infos = [open_raster(p) for p in paths]
    seen: dict[str, str] = {}
    for info in infos:
        if info.name in seen:
            raise InputError(
                f"two inputs are both named {info.name!r} ({seen[info.name]}, {info.path}); rename one of them"
            )
        seen[info.name] = info.path
    band_list = check_bands(infos, bands)
    grid = common_grid(infos, crs, resolution)
    footprints = [footprint(info, grid) for info in infos]
    covered = [c for c in chunks(grid, chunk_size) if any(not c.intersect(fp).empty for fp in footprints)]
    return Plan(infos, band_list, grid, block_grid(grid, block_size, n_blocks), footprints, covered)
