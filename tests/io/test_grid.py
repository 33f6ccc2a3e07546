"""Chunks of the common grid that follow scene density."""

from __future__ import annotations

from stacrrn.io.grid import chunks, density_chunks
from stacrrn.types import Box, Grid


def _grid(size: int) -> Grid:
    return Grid("EPSG:32633", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), size, size)


def _tiles(size: int, scene: int, step: int) -> list[Box]:
    """Scenes of ``scene`` pixels every ``step`` pixels, as many small overlapping scenes are laid out."""
    return [
        Box(r, c, r + scene, c + scene)
        for r in range(0, size - scene + 1, step)
        for c in range(0, size - scene + 1, step)
    ]


def _meeting(box: Box, footprints: list[Box]) -> int:
    return sum(not box.intersect(fp).empty for fp in footprints)


def test_dense_scenes_split_until_few_meet_a_chunk_and_every_covered_pixel_stays_in_one_chunk():
    footprints = _tiles(2048, 256, 230)  # 8 x 8 scenes of 256 px with 26 px of overlap
    assert max(_meeting(c, footprints) for c in chunks(_grid(2048), 1024)) > 6  # the plain chunks meet up to 25
    boxes = density_chunks(_grid(2048), 1024, footprints, 6, 256)
    assert max(_meeting(b, footprints) for b in boxes) <= 6
    assert min(min(b.height, b.width) for b in boxes) >= 256
    covered = {(r, c) for fp in footprints for r in range(fp.row0, fp.row1, 16) for c in range(fp.col0, fp.col1, 16)}
    owners = {
        (r, c): [k for k, b in enumerate(boxes) if b.row0 <= r < b.row1 and b.col0 <= c < b.col1] for r, c in covered
    }
    assert all(len(k) == 1 for k in owners.values())  # a partition of the covered pixels: no pixel counted twice
    assert all(_meeting(b, footprints) for b in boxes)


def test_sparse_scenes_and_stacks_keep_the_plain_chunks():
    sparse = _tiles(4096, 1500, 1400)  # large scenes: at most four meet a 1024 chunk
    plain = [c for c in chunks(_grid(4096), 1024) if _meeting(c, sparse)]
    assert density_chunks(_grid(4096), 1024, sparse, 6, 256) == plain
    stack = [Box(0, 0, 2048, 2048)] * 50  # a time series over one place: quarters meet as many dates
    assert density_chunks(_grid(2048), 1024, stack, 6, 256) == chunks(_grid(2048), 1024)


def test_quartering_stops_at_the_smallest_chunk():
    footprints = _tiles(1024, 64, 60)  # 256 tiny scenes
    boxes = density_chunks(_grid(1024), 1024, footprints, 6, 256)
    assert {(b.height, b.width) for b in boxes} == {(256, 256)}
    assert max(_meeting(b, footprints) for b in boxes) > 6  # bounded by the smallest chunk, not the count
