"""Seamlines partition the union of footprints exactly once, for any layout and input order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from stacrrn.core.seamlines import NONE, blend_weights, partition, signed_distance

H, W = 60, 80


@st.composite
def layouts(draw):
    """2-6 rectangles on a 60 x 80 grid, many of them overlapping 3 or 4 ways, with priorities."""
    n = draw(st.integers(2, 6))
    masks = []
    for _ in range(n):
        r0 = draw(st.integers(0, H - 10))
        c0 = draw(st.integers(0, W - 10))
        r1 = draw(st.integers(r0 + 5, H))
        c1 = draw(st.integers(c0 + 5, W))
        m = np.zeros((H, W), bool)
        m[r0:r1, c0:c1] = True
        masks.append(m)
    priority = draw(st.lists(st.sampled_from([1.0, 1.0, 2.0, 0.5]), min_size=n, max_size=n))
    return masks, priority


@settings(deadline=None, max_examples=60)
@given(layouts(), st.randoms())
def test_partition_covers_the_union_once_inside_each_footprint_for_any_order(layout, rnd):
    masks, priority = layout
    keys = [f"img{k}" for k in range(len(masks))]
    labels = partition(masks, keys, priority)
    union = np.logical_or.reduce(masks)
    assert np.array_equal(labels != NONE, union)  # no gap, and nothing outside the union
    for k, m in enumerate(masks):
        assert m[labels == k].all()  # each region inside its own footprint
    perm = list(range(len(masks)))
    rnd.shuffle(perm)
    shuffled = partition([masks[p] for p in perm], [keys[p] for p in perm], [priority[p] for p in perm])
    mapped = np.where(shuffled == NONE, NONE, np.asarray(perm)[np.maximum(shuffled, 0)])
    assert np.array_equal(mapped, labels)  # independent of the input order
    assert np.array_equal(partition(masks, keys, priority, workers=2), labels)  # and of the threads used


def test_two_equal_images_split_in_the_middle_and_priority_moves_the_seam():
    a = np.zeros((20, 60), bool)
    b = np.zeros((20, 60), bool)
    a[:, :40], b[:, 20:] = True, True
    labels = partition([a, b], ["a", "b"])
    cut = [int(np.argmax(row == 1)) for row in labels]
    assert all(c == 30 for c in cut)  # the middle of the 20-pixel overlap, edge to edge
    favoured = partition([a, b], ["a", "b"], [1.0, 3.0])
    assert (favoured == 1).sum() > (labels == 1).sum()


def test_feathering_weights_sum_to_one_and_ramp_across_the_seam():
    a = np.zeros((10, 60), bool)
    b = np.zeros((10, 60), bool)
    a[:, :40], b[:, 20:] = True, True
    labels = partition([a, b], ["a", "b"])
    signed = [signed_distance(labels, 0), signed_distance(labels, 1)]
    wa, wb = blend_weights(signed, [a, b], width=8)
    union = a | b
    np.testing.assert_allclose((wa + wb)[union], 1.0)
    row = wa[5]
    assert row[10] == 1 and row[50] == 0 and 0.3 < row[30] < 0.7
    assert np.all(np.diff(row[20:40]) <= 1e-12)  # monotone ramp from a to b
    hard_a, _ = blend_weights(signed, [a, b], width=0)
    assert set(np.unique(hard_a[union])) == {0.0, 1.0} and np.array_equal(hard_a[union] == 1, labels[union] == 0)


def test_a_hole_in_the_assigned_image_is_filled_by_the_other_one():
    a = np.ones((10, 30), bool)
    b = np.ones((10, 30), bool)
    labels = partition([a, b], ["a", "b"])
    hole = a.copy()
    hole[4:6, :] = False  # nodata in image a after the seams were drawn
    signed = [signed_distance(labels, 0), signed_distance(labels, 1)]
    wa, wb = blend_weights(signed, [hole, b], width=0)
    assert np.all(wb[4:6, :] == 1) and np.all((wa + wb) == 1)


def test_bad_arguments():
    m = np.ones((4, 4), bool)
    with pytest.raises(ValueError, match="unique"):
        partition([m, m], ["x", "x"])
    with pytest.raises(ValueError, match="positive"):
        partition([m, m], ["x", "y"], [1.0, 0.0])


def test_an_image_inside_another_wins_its_centre_with_a_priority():
    big = np.ones((60, 60), bool)
    small = np.zeros((60, 60), bool)
    small[20:40, 20:40] = True
    plain = partition([big, small], ["big", "small"])
    preferred = partition([big, small], ["big", "small"], [1.0, 4.0])
    assert (preferred == 1).sum() > (plain == 1).sum() and preferred[30, 30] == 1


def test_seam_jump_and_gradient_ratio_by_hand():
    from stacrrn.core.seam_metrics import seam_sums

    values = np.array([[[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0]]])  # one band, a step of 4 at the seam
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    valid = np.ones((2, 4), bool)
    sums = seam_sums(values, valid, labels, near=1)
    assert sums.seam_pairs == 2 and sums.jump[0] == 4.0
    # nearby pairs: the vertical ones and the horizontal ones beside the seam, all flat
    assert sums.near_pairs > 0 and sums.near_sum[0] == 0 and np.isinf(sums.gradient_ratio[0])
    smooth = np.array([[[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]])
    ramp = seam_sums(smooth, valid, labels, near=1)
    # near pairs: 4 horizontal (difference 1) and 4 vertical (0) -> mean 0.5, ratio 2
    assert ramp.jump[0] == 1.0 and ramp.near_pairs == 8 and ramp.gradient_ratio[0] == 2.0
    half = seam_sums(values[:, :, :2], valid[:, :2], labels[:, :2])
    assert half.seam_pairs == 0 and np.isnan(half.jump[0])
    merged = seam_sums(values, valid, labels, near=1)
    merged.add(ramp)
    assert merged.seam_pairs == 4 and merged.jump[0] == 2.5
    assert merged.to_dict()["jump"] == [2.5]


def _seam_sums_by_pairs(values, valid, labels, near):
    """Reference: every 4-connected pair visited; 'nearby' is within ``near`` steps (L1) of a seam pixel."""
    rows, cols = valid.shape
    pairs = [((r, c), (r + dr, c + dc)) for r in range(rows) for c in range(cols) for dr, dc in ((1, 0), (0, 1))]
    pairs = [(p, q) for p, q in pairs if q[0] < rows and q[1] < cols and valid[p] and valid[q]]
    seam = {(p, q) for p, q in pairs if labels[p] != labels[q]}
    seam_pixels = np.zeros(valid.shape, bool)
    for p, q in seam:
        seam_pixels[p] = seam_pixels[q] = True
    r, c = np.nonzero(seam_pixels)
    rr, cc = np.mgrid[:rows, :cols]
    steps = np.min(np.abs(rr[..., None] - r) + np.abs(cc[..., None] - c), axis=-1)
    close = [(p, q) for p, q in pairs if (p, q) not in seam and steps[p] <= near and steps[q] <= near]
    jump = sum(np.abs(values[:, p[0], p[1]] - values[:, q[0], q[1]]) for p, q in seam)
    around = sum(np.abs(values[:, p[0], p[1]] - values[:, q[0], q[1]]) for p, q in close)
    return len(seam), len(close), jump, around


@pytest.mark.parametrize("near", [1, 3])
def test_seam_sums_equal_a_pair_by_pair_count_when_the_seam_is_a_small_part_of_the_window(near):
    from stacrrn.core.seam_metrics import seam_sums

    rng = np.random.default_rng(7)
    values = rng.normal(100, 20, (2, 40, 50))
    labels = np.zeros((40, 50), np.int32)
    labels[25:33, 30:41] = 1  # a seam around an island, well inside the window
    labels[31:, 44:] = 2  # and one that reaches the window's edge
    valid = rng.random((40, 50)) > 0.1
    sums = seam_sums(values, valid, labels, near=near)
    seam_pairs, near_pairs, jump, around = _seam_sums_by_pairs(values, valid, labels, near)
    assert (sums.seam_pairs, sums.near_pairs) == (seam_pairs, near_pairs)
    np.testing.assert_allclose(sums.seam_sum, jump, rtol=1e-12)
    np.testing.assert_allclose(sums.near_sum, around, rtol=1e-12)


def test_owners_give_each_pixel_to_the_valid_image_deepest_inside_its_region():
    from stacrrn.core.seamlines import owners

    signed = [np.array([[3.0, -1.0, 2.0, -5.0, 1.0]]), np.array([[-3.0, 1.0, 2.0, -4.0, 1.0]]), np.full((1, 5), -9.0)]
    valid = [
        np.array([[True, True, True, False, False]]),
        np.array([[True, False, True, False, False]]),
        np.array([[True, True, True, True, False]]),
    ]
    # 0 is deepest; 1 is deeper but has no data there; a tie goes to the first; only 2 has data; none has
    assert owners(signed, valid).tolist() == [[0, 0, 0, 2, NONE]]
    hard = blend_weights(signed, valid, width=0)
    assert [w.tolist() for w in hard] == [[[1, 1, 1, 0, 0]], [[0, 0, 0, 0, 0]], [[0, 0, 0, 1, 0]]]


def test_least_cost_seams_go_around_a_building_and_keep_the_partition():
    from stacrrn.core.seamlines import least_cost_seams

    a = np.zeros((40, 80), bool)
    b = np.zeros((40, 80), bool)
    c = np.zeros((40, 80), bool)
    a[:, :50], b[:, 30:], c[25:, 60:] = True, True, True  # a third image makes a junction
    labels = partition([a, b, c], ["a", "b", "c"])
    cost = np.zeros((40, 80))
    building = np.zeros((40, 80), bool)
    building[5:20, 36:44] = True  # differs between a and b, across the centre seam
    cost[building] = 5.0
    moved = least_cost_seams(labels, [a, b, c], cost, width=8)
    assert len(np.unique(labels[building])) == 2  # the centre seam cuts the building
    assert len(np.unique(moved[building])) == 1  # the least-cost seam goes around it
    assert np.array_equal(moved != -1, a | b | c)  # still every covered pixel exactly once
    for k, m in enumerate((a, b, c)):
        assert m[moved == k].all()
    near_c = ndimage.binary_dilation(labels == 2, iterations=8)
    assert np.array_equal(moved[near_c], labels[near_c])  # junctions keep their centre labels


def _whole_grid_partition(valid, keys, priority):
    """The partition with every distance transform over the whole grid (the definition)."""
    union = np.logical_or.reduce(valid)
    best, labels = np.full(union.shape, -np.inf), np.full(union.shape, NONE, dtype=np.int32)
    for k in sorted(range(len(valid)), key=lambda k: keys[k]):
        others = union & ~valid[k]
        if not others.any():
            others = ~np.pad(valid[k], 1, constant_values=False)
            distance = ndimage.distance_transform_edt(~others)[1:-1, 1:-1]
        else:
            distance = ndimage.distance_transform_edt(~others)
        score = np.where(valid[k], distance * priority[k], -np.inf)
        wins = score > best
        best[wins], labels[wins] = score[wins], k
    return labels


@st.composite
def ragged_layouts(draw):
    """Footprints with holes, notches and thin arms: their nearest uncovered pixel may lie outside their box."""
    masks, priority = draw(layouts())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ragged = []
    for m in masks:
        m = m.copy()
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        for _ in range(int(rng.integers(0, 4))):  # cut holes and notches
            r, c = rng.integers(rows[0], rows[-1] + 1), rng.integers(cols[0], cols[-1] + 1)
            m[r : r + int(rng.integers(1, 8)), c : c + int(rng.integers(1, 8))] = False
        if not m.any():
            m[rows[0], cols[0]] = True
        ragged.append(m)
    return ragged, priority


@settings(deadline=None, max_examples=150)
@given(ragged_layouts())
def test_partition_on_each_footprints_box_equals_the_whole_grid_definition(layout):
    masks, priority = layout
    keys = [f"img{k}" for k in range(len(masks))]
    assert np.array_equal(partition(masks, keys, priority), _whole_grid_partition(masks, keys, priority))


def test_partition_falls_back_to_the_whole_grid_when_a_nearer_uncovered_pixel_lies_outside_the_box():
    # a one-row strip; the other image covers the rows above it (two rows away, outside the
    # strip's box), the strip's first 6 pixels and one pixel below its far end (inside the
    # box): from the shared pixels, the nearest pixel only the other image covers lies outside
    # the strip's box, and it decides who wins them
    a = np.zeros((30, 40), bool)
    a[20, :] = True
    b = np.zeros((30, 40), bool)
    b[:19, :] = True
    b[20, :6] = True
    b[21, 39] = True
    masks, keys, priority = [a, b], ["a", "b"], [1.0, 1.0]
    assert np.array_equal(partition(masks, keys, priority), _whole_grid_partition(masks, keys, priority))


@settings(deadline=None, max_examples=80)
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.floats(-3, 3),
    st.floats(-3, 3),
    st.floats(0.3, 3),
    st.integers(1, 30),
    st.integers(1, 30),
)
def test_bilinear_on_lattice_equals_scipy_map_coordinates(h, w, row0, col0, step, n_rows, n_cols):
    from stacrrn.core.seamlines import bilinear_on_lattice

    values = np.random.default_rng(h * 100 + w).normal(0, 10, (h, w))
    rows, cols = row0 + step * np.arange(n_rows), col0 + step * np.arange(n_cols)  # runs past the edges too
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    expected = ndimage.map_coordinates(values, [rr, cc], order=1, mode="constant", cval=-99.0)
    np.testing.assert_allclose(bilinear_on_lattice(values, rows, cols, -99.0), expected, rtol=0, atol=1e-9)
