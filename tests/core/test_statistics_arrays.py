"""Statistics and chunk moments as flat arrays: a fixed set of arrays, rebuilt bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from stacrrn.core.moments import BlockSums, ImageMoments, PairMoments
from stacrrn.core.statistics import ChunkStatistics, Statistics, chunk_statistics
from stacrrn.types import BlockGrid, Box

BLOCKS = BlockGrid(8, 8, 6, 8)
GRID = Box(0, 0, 48, 64)


def footprints(n: int) -> list[Box]:
    """Strips shifted by 6 columns: every neighbour overlaps, far ones do not."""
    return [Box(0, 6 * k, 48, min(64, 6 * k + 24)) for k in range(n)]


def chunks_of(n: int, seed: int = 0) -> list[ChunkStatistics]:
    """Moments of the four 24 x 32 chunks of the grid, with a PIF mask and held-out pixels."""
    rng = np.random.default_rng(seed)
    fps = footprints(n)
    values = [np.rint(rng.normal(900 + 50 * k, 80, (2, 48, 64))) for k in range(n)]
    valid = []
    for fp in fps:
        v = np.zeros((48, 64), dtype=bool)
        v[fp.row0 : fp.row1, fp.col0 : fp.col1] = rng.random((fp.height, fp.width)) > 0.1
        valid.append(v)
    held = np.zeros((48, 64), dtype=bool)
    held[::7, ::5] = True
    out = []
    for row0, col0 in [(0, 0), (0, 32), (24, 0), (24, 32)]:
        box = Box(row0, col0, row0 + 24, col0 + 32)
        r, c = slice(row0, row0 + 24), slice(col0, col0 + 32)
        layers = {k: (values[k][:, r, c], valid[k][r, c]) for k in range(n) if valid[k][r, c].any()}
        pairs = frozenset((i, j) for i in range(n) for j in range(i + 1, min(n, i + 3)))

        def pair_mask(b, i, j, xi, xj):
            return np.abs(xi[0] - xj[0]) < 150

        out.append(chunk_statistics(box, layers, BLOCKS, pairs, pair_mask, held[r, c]))
    return out


def merged(n: int, chunks: list[ChunkStatistics] | None = None) -> Statistics:
    stats = Statistics.empty(2, footprints(n), BLOCKS)
    for chunk in chunks if chunks is not None else chunks_of(n):
        stats.add(chunk)
    return stats


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Same names in the same order, same dtypes and shapes, same bytes (NaN payloads and -0.0 included)."""
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


def test_statistics_round_trip_is_bit_exact_with_keys_in_the_same_order():
    stats = merged(7)
    assert stats.holdout_blocks and stats.pair_blocks and stats.overlaps
    stats.pairs = dict(reversed(stats.pairs.items()))  # an order that is not sorted must survive too
    arrays = stats.to_arrays()
    back = Statistics.from_arrays(arrays)
    assert_identical(back.to_arrays(), arrays)
    assert list(back.pairs) == list(stats.pairs) and list(back.pair_blocks) == list(stats.pair_blocks)
    assert back.to_dict() == stats.to_dict()
    for key, pm in stats.pairs.items():
        for name in ("mean_i", "mean_j", "m2_i", "m2_j", "c_ij"):
            assert getattr(back.pairs[key], name).tobytes() == getattr(pm, name).tobytes()


def test_awkward_floats_and_empty_frames_survive():
    """-0.0, NaN with a payload, infinities, subnormals; an image with no footprint (empty frame)."""
    stats = Statistics.empty(2, [Box(0, 0, 16, 16), Box(0, 0, 0, 0)], BLOCKS)
    nan = np.frombuffer(np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes(), dtype=np.float64)[0]
    odd = np.array([-0.0, nan, np.inf, -np.inf, 5e-324, 1 / 3, 2.0**60 + 2.0**8, 0.1])
    stats.images[0] = ImageMoments(3, odd[:2].copy(), odd[2:4].copy())
    stats.pairs[(0, 1)] = PairMoments(2**40, *(odd[k : k + 2].copy() for k in (0, 2, 4, 6, 1)))
    stats.image_blocks[0].sums[:] = odd.reshape(2, 2, 2)[:, :, :1].repeat(2, axis=2)
    stats.overlaps[(0, 1)] = 0
    back = Statistics.from_arrays(stats.to_arrays())
    assert_identical(back.to_arrays(), stats.to_arrays())
    assert back.image_blocks[1].frame == Box(0, 0, 0, 0) and back.image_blocks[1].sums.shape == (2, 0, 0)


@pytest.mark.parametrize("n", [1, 5])
def test_chunk_statistics_round_trip(n):
    for chunk in [*chunks_of(n), ChunkStatistics()]:
        arrays = chunk.to_arrays()
        back = ChunkStatistics.from_arrays(arrays)
        assert_identical(back.to_arrays(), arrays)
        assert back.to_dict() == chunk.to_dict()
        assert [list(getattr(back, g)) for g in ("images", "pairs", "pair_blocks", "holdout_blocks", "overlaps")] == [
            list(getattr(chunk, g)) for g in ("images", "pairs", "pair_blocks", "holdout_blocks", "overlaps")
        ]


def test_a_fixed_handful_of_arrays_whatever_the_number_of_dates():
    few, many = merged(3).to_arrays(), merged(10).to_arrays()
    assert list(few) == list(many) and len(many) <= 32
    assert many["pairs.index"].shape == (len(merged(10).pairs), 2)
    assert many["pairs.moments"].shape[1:] == (5, 2)
    assert all(a.ndim <= 3 for a in many.values())


def test_reloaded_statistics_keep_merging_as_the_originals():
    """Block sums rebuilt as views of one array (even a read-only one) take further chunks in place alike."""
    chunks = chunks_of(6)
    partial = merged(6, chunks[:2])
    arrays = {k: v.copy() for k, v in partial.to_arrays().items()}
    for a in arrays.values():
        a.flags.writeable = False  # as memory a file was mapped into
    reloaded = Statistics.from_arrays(arrays)
    for chunk in chunks[2:]:
        reloaded.add(chunk)
    assert_identical(reloaded.to_arrays(), merged(6, chunks).to_arrays())
    assert_identical(Statistics.from_arrays(arrays).to_arrays(), partial.to_arrays())  # the input untouched


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda a: a.pop("pairs.moments"), KeyError),
        (lambda a: a.update({"pair_blocks.sums": a["pair_blocks.sums"][:-1]}), ValueError),
        (lambda a: a.update({"pair_blocks.shape": a["pair_blocks.shape"][:-1]}), ValueError),
        (lambda a: a.update({"pairs.index": a["pairs.index"][:-1]}), ValueError),
        (lambda a: a.update({"images.mean": a["images.mean"].astype(np.float32)}), ValueError),
        (lambda a: a.update({"footprints": a["footprints"][:-1]}), ValueError),
        (lambda a: a.update({"overlaps.n": a["overlaps.n"].astype(float)}), ValueError),
        (lambda a: a.update({"blocks": a["blocks"][:3]}), ValueError),
    ],
    ids=["missing", "short sums", "short shapes", "short index", "float32", "footprints", "float counts", "grid"],
)
def test_arrays_that_do_not_fit_are_refused(damage, error):
    arrays = merged(4).to_arrays()
    damage(arrays)
    with pytest.raises(error):
        Statistics.from_arrays(arrays)


def test_block_sums_stack_checks_its_shapes():
    blocks = [BlockSums(Box(1, 2, 3, 5), np.ones((2, 3)), np.arange(12.0).reshape(2, 2, 3))]
    arrays = BlockSums.stack(blocks)
    assert arrays["frame"].tolist() == [[1, 2, 3, 5]] and arrays["shape"].tolist() == [[2, 2, 3]]
    (back,) = BlockSums.unstack(arrays)
    assert back.frame == blocks[0].frame and np.array_equal(back.sums, blocks[0].sums)
    with pytest.raises(ValueError, match="blocks"):
        BlockSums.unstack(arrays | {"shape": np.array([[2, 3, 3]])})
    assert BlockSums.unstack(BlockSums.stack([])) == []
