"""Chunk statistics streamed image by image equal those of all layers at once."""

from __future__ import annotations

import numpy as np
import pytest

from stacrrn.core.moments import PairMoments
from stacrrn.core.statistics import chunk_statistics, streamed_chunk_statistics
from stacrrn.types import BlockGrid, Box


def layers_of(n: int, seed: int = 0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        valid = rng.random((24, 32)) > 0.2
        if i == 3:
            valid[:] = False  # an image with nothing in this chunk
        out[i] = (rng.normal(100 + i, 10, (2, 24, 32)), valid)
    return out


def as_dict(chunk) -> dict:
    return chunk.to_dict()


GRAPHS = {
    "all pairs": None,
    "nearest 2 dates": frozenset((i, j) for i in range(12) for j in range(i + 1, min(12, i + 3))),
    "star on 0 and 5": frozenset((min(i, r), max(i, r)) for r in (0, 5) for i in range(12) if i != r),
}


@pytest.mark.parametrize("graph", GRAPHS, ids=list(GRAPHS))
@pytest.mark.parametrize("max_images", [2, 4, 20])
def test_streaming_gives_the_same_moments_with_few_images_held(graph, max_images):
    box = Box(8, 16, 32, 48)
    blocks = BlockGrid(64, 64, 10, 10)
    layers = layers_of(12)
    holdout = np.zeros((24, 32), dtype=bool)
    holdout[::5, ::3] = True

    def pair_mask(b, i, j, xi, xj):
        return np.abs(xi[0] - xj[0]) < 12

    expected = chunk_statistics(box, layers, blocks, GRAPHS[graph], pair_mask, holdout)
    loaded = []

    def load(i):
        loaded.append(i)
        return layers[i]

    got = streamed_chunk_statistics(box, range(12), load, blocks, GRAPHS[graph], pair_mask, holdout, max_images)
    assert as_dict(got) == as_dict(expected)
    assert list(got.pairs) == list(expected.pairs)
    fits = max_images >= 12 or (graph == "nearest 2 dates" and max_images >= 3)
    if fits:  # a window of images: every image read once
        assert sorted(loaded) == list(range(12))
    else:  # blocks of images: some read again, never more than max_images held
        assert len(loaded) > 12


def test_pairs_covering_the_same_pixels_reuse_their_images_block_sums_exactly():
    from stacrrn.core.statistics import _block_sums

    box, blocks = Box(8, 16, 32, 48), BlockGrid(64, 64, 10, 10)
    rng = np.random.default_rng(3)
    valid = np.ones((24, 32), dtype=bool)
    valid[:3] = False  # the same collar in both dates
    xi, xj = rng.normal(100, 10, (2, 2, 24, 32))
    stats = chunk_statistics(box, {0: (xi, valid), 1: (xj, valid)}, blocks)
    got = stats.pair_blocks[(0, 1)]
    # the pair moments reuse the images' means, spreads and centred values: identical to a direct computation
    # (pixels gathered into contiguous rows, as the engine sums them: the same order of additions)
    joint = stats.pairs[(0, 1)]
    alone = PairMoments.of(np.ascontiguousarray(xi[:, valid]), np.ascontiguousarray(xj[:, valid]))
    for name in ("mean_i", "mean_j", "m2_i", "m2_j", "c_ij"):
        np.testing.assert_array_equal(getattr(joint, name), getattr(alone, name))
    assert joint.n == alone.n == valid.sum()
    rows = np.broadcast_to((np.arange(8, 32) + 0.5)[:, None], (24, 32))
    cols = np.broadcast_to((np.arange(16, 48) + 0.5)[None, :], (24, 32))
    direct = _block_sums(box, valid, [*xi, *xj, *(xi * xi), *(xj * xj), rows, cols], blocks)
    assert got.frame == direct.frame
    np.testing.assert_array_equal(got.n, direct.n)
    np.testing.assert_array_equal(got.sums, direct.sums)


@pytest.mark.parametrize("junk", [np.nan, 65535.0, -1e30])
def test_values_under_invalid_pixels_never_reach_the_moments(junk):
    """Whatever an invalid pixel holds (NaN, a nodata value), the moments are those of the valid pixels alone.

    Integer DN over a partial overlap (a scene's edge in a chunk): image and pair moments equal,
    bit for bit, those of the valid pixels gathered, and the pair block sums those of the
    masked planes.
    """
    from stacrrn.core.statistics import _block_sums

    box, blocks = Box(0, 0, 40, 48), BlockGrid(40, 48, 16, 16)
    rng = np.random.default_rng(7)
    truth = rng.integers(1, 60000, (2, 3, 40, 48)).astype(np.float64)
    valid = np.zeros((2, 40, 48), dtype=bool)
    valid[0, :, :30] = True  # image 0 covers the left, image 1 the right: 12 columns in common
    valid[1, 5:, 18:] = True
    valid[0, 7, 3] = valid[1, 20, 25] = False  # and a nodata pixel inside each
    layers = {k: (np.where(valid[k], truth[k], junk), valid[k].copy()) for k in range(2)}

    stats = chunk_statistics(box, layers, blocks)

    for k in range(2):
        alone = PairMoments.of(truth[k][:, valid[k]], truth[k][:, valid[k]])
        assert stats.images[k].n == valid[k].sum()
        np.testing.assert_array_equal(stats.images[k].mean, alone.mean_i)
        np.testing.assert_array_equal(stats.images[k].m2, alone.m2_i)
    both = valid[0] & valid[1]
    expected = PairMoments.of(truth[0][:, both], truth[1][:, both])
    got = stats.pairs[(0, 1)]
    assert got.n == expected.n == both.sum() == stats.overlaps[(0, 1)]
    for name in ("mean_i", "mean_j", "m2_i", "m2_j", "c_ij"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    rows = np.broadcast_to((np.arange(40) + 0.5)[:, None], (40, 48))
    cols = np.broadcast_to((np.arange(48) + 0.5)[None, :], (40, 48))
    a, b = truth
    direct = _block_sums(box, both, [*a, *b, *(a * a), *(b * b), rows, cols], blocks)
    np.testing.assert_array_equal(stats.pair_blocks[(0, 1)].sums, direct.sums)
    own = _block_sums(box, valid[0], list(a), blocks)
    np.testing.assert_array_equal(stats.image_blocks[0].sums, own.sums)
