"""A real ``stacrrn match`` run (global+local) on four real Sentinel-2 tiles with known distortions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stacrrn.pipeline.match import MatchResult, match
from tests.conftest import S2_TILES, distort_tiles, tile_grid_coords

BANDS = [1, 2, 3, 7]  # four of the ten bands (blue, green, red, nir in the usual S2 stack order)
TILES = [0, 1, 4, 5]  # a 2x2 block of the 4x4 tiles


@dataclass(frozen=True)
class Run:
    out: Path
    result: MatchResult
    truths: list[np.ndarray]


@pytest.fixture(scope="session")
def match_run(tmp_path_factory) -> Run:
    """Gains, offsets and a smooth multiplicative gradient on tiles 1-3; tile 0 the reference."""
    if not S2_TILES:
        pytest.skip("../shared/data (real sample imagery) is not present")
    rng = np.random.default_rng(5)
    gains = rng.uniform(0.8, 1.2, (4, len(BANDS)))
    offsets = rng.uniform(-10, 10, (4, len(BANDS)))  # the tiles' values are small (means 50-200)
    gains[0], offsets[0] = 1, 0

    def distort(k: int, truth: np.ndarray) -> np.ndarray:
        x, _ = tile_grid_coords(truth.shape[1:])
        ramp = 1 + (0.04 * x if k else 0.0)
        return (truth * gains[k][:, None, None] + offsets[k][:, None, None]) * ramp

    tmp = tmp_path_factory.mktemp("report-inputs")
    paths, truths = distort_tiles(tmp, [S2_TILES[k] for k in TILES], BANDS, distort, dtype="float32")
    out = tmp_path_factory.mktemp("report-run") / "out"
    result = match(paths, out, references=["t00"], method="global+local", n_blocks=8)
    return Run(out, result, truths)


S2_NINE = [0, 1, 2, 4, 5, 6, 8, 9, 10]  # a 3x3 block of the 4x4 tiles: 36 pairs, 20 of them overlapping


@pytest.fixture(scope="session")
def s2_mosaic(tmp_path_factory) -> Run:
    """The newcomer's case (the demo): nine real Sentinel-2 tiles, ten bands (no band names), known gains/offsets.

    Tile 0 is the reference and untouched. The tiles agree exactly in their overlaps, so the
    global step recovers the distortions and the local fields stay 1 within float noise.
    """
    if not S2_TILES:
        pytest.skip("../shared/data (real sample imagery) is not present")
    rng = np.random.default_rng(11)
    gains = rng.uniform(0.8, 1.2, (len(S2_NINE), 10))
    offsets = rng.uniform(-10, 10, (len(S2_NINE), 10))
    gains[0], offsets[0] = 1, 0

    def distort(k: int, truth: np.ndarray) -> np.ndarray:
        return truth * gains[k][:, None, None] + offsets[k][:, None, None]

    tmp = tmp_path_factory.mktemp("s2-inputs")
    bands = list(range(1, 11))
    tiles = [S2_TILES[k] for k in S2_NINE]
    paths, truths = distort_tiles(tmp, tiles, bands, distort, dtype="float32")
    paths = [p.rename(p.with_name(tile.name)) for p, tile in zip(paths, tiles, strict=True)]  # the files' long names
    out = tmp_path_factory.mktemp("s2-run") / "out"
    result = match(paths, out, references=[tiles[0].stem], method="global+local", n_blocks=16)
    return Run(out, result, truths)
