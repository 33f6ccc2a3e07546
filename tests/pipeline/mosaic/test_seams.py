"""Seamlines of many small images: memory follows the footprints, not images x seam grid (issue 25)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from stacrrn.core.seamlines import partition
from stacrrn.pipeline.inputs.plan import Plan
from stacrrn.pipeline.mosaic.seams import CroppedMasks, compute_seams
from stacrrn.types import BlockGrid, Box, Grid

SIDE, STEP, PER_ROW = 12, 10, 12  # 144 images of 12 px overlapping by 2 px on a 122 px seam grid


def _tiny_images() -> Plan:
    size = STEP * (PER_ROW - 1) + SIDE
    grid = Grid("EPSG:32633", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), size, size)
    footprints = [
        Box(r * STEP, c * STEP, r * STEP + SIDE, c * STEP + SIDE) for r in range(PER_ROW) for c in range(PER_ROW)
    ]

    def read(box, images):  # every pixel of a footprint valid, one band
        return {i: (np.ones((1, box.height, box.width)), np.ones((box.height, box.width), bool)) for i in images}

    names = [f"s{k:03d}" for k in range(len(footprints))]
    return Plan(names, names, [1], grid, BlockGrid(size, size, 1, 1), footprints, [grid.box], read, [])


def test_cropped_masks_are_the_full_masks():
    boxes = [Box(0, 0, 2, 3), Box(1, 1, 4, 4)]
    crops = [np.array([[1, 0, 1], [0, 1, 0]], bool), np.ones((3, 3), bool)]
    masks = CroppedMasks((4, 5), boxes, crops)
    expected = np.zeros((2, 4, 5), bool)
    expected[0, :2, :3] = crops[0]
    expected[1, 1:4, 1:4] = True
    assert len(masks) == 2
    np.testing.assert_array_equal(np.stack(list(masks)), expected)
    np.testing.assert_array_equal(masks[1:][0], expected[1])


def test_partition_of_many_small_images_builds_one_full_mask_at_a_time():
    plan = _tiny_images()
    n, shape = len(plan.names), (plan.grid.height, plan.grid.width)
    crops = [np.ones((fp.height, fp.width), bool) for fp in plan.footprints]
    masks = CroppedMasks(shape, plan.footprints, crops)
    tracemalloc.start()
    try:
        labels = partition(masks, plan.names)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    full = n * shape[0] * shape[1]  # bytes of a full seam-grid mask per image
    assert peak < full / 4  # union, scores, labels and a mask or two: about 15 bytes per pixel
    np.testing.assert_array_equal(labels, partition(list(masks), plan.names))


def test_seams_of_many_small_images_give_every_image_a_region():
    plan = _tiny_images()
    seams = compute_seams(plan, [1.0] * len(plan.names), margin=1)
    assert set(np.unique(seams.labels)) == set(range(len(plan.names)))
