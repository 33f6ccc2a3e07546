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
