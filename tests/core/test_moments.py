import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stacrrn.core.moments import BlockSums, ImageMoments, PairMoments
from stacrrn.types import Box

values = arrays(np.float64, st.tuples(st.integers(2, 3), st.integers(3, 60)), elements=st.floats(-1e4, 6e4))


@given(values, st.integers(1, 59), st.integers(1, 59))
def test_image_moments_merge_equals_whole_and_is_associative(x, cut1, cut2):
    n = x.shape[1]
    a, b = sorted((min(cut1, n - 1), min(cut2, n - 1)))
    whole = ImageMoments.of(x)
    parts = [ImageMoments.of(x[:, :a]), ImageMoments.of(x[:, a:b]), ImageMoments.of(x[:, b:])]
    left = parts[0].merge(parts[1]).merge(parts[2])
    right = parts[0].merge(parts[1].merge(parts[2]))
    scale = 1 + np.abs(x).max() ** 2 * n
    for m in (left, right):
        assert m.n == n
        np.testing.assert_allclose(m.mean, whole.mean, rtol=1e-9, atol=1e-9 * (1 + np.abs(x).max()))
        np.testing.assert_allclose(m.m2, whole.m2, rtol=1e-7, atol=1e-9 * scale)


@given(values, st.integers(1, 59))
def test_pair_moments_merge_matches_numpy(x, cut):
    y = 0.7 * x[::-1] + 3.0
    c = min(cut, x.shape[1] - 1)
    merged = PairMoments.of(x[:, :c], y[:, :c]).merge(PairMoments.of(x[:, c:], y[:, c:]))
    n = x.shape[1]
    cov = ((x - x.mean(1, keepdims=True)) * (y - y.mean(1, keepdims=True))).sum(1)
    scale = 1 + np.abs(x).max() * np.abs(y).max() * n
    np.testing.assert_allclose(merged.c_ij, cov, rtol=1e-7, atol=1e-9 * scale)
    np.testing.assert_allclose(merged.std_i, x.std(1), rtol=1e-6, atol=1e-6 * (1 + np.abs(x).max()))


def test_large_uint16_sums_stay_exact():
    rng = np.random.default_rng(0)
    x = rng.integers(60000, 60010, size=(1, 4_000_000)).astype(np.float64)
    chunks = np.array_split(x, 40, axis=1)
    m = ImageMoments.empty(1)
    for c in chunks:
        m = m.merge(ImageMoments.of(c))
    np.testing.assert_allclose(m.std, x.std(1), rtol=1e-9)


def test_block_sums_add_into_larger_frame():
    total = BlockSums.zeros(Box(0, 0, 3, 3), 1)
    part = BlockSums(Box(1, 1, 2, 3), np.array([[1.0, 2.0]]), np.array([[[1.0, 5.0]]]))
    total.add(part)
    assert total.n[1, 1] == 1 and total.n[1, 2] == 2
    assert total.sums[0, 1, 2] == 5.0


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_band_summary_is_exact_over_windows(dtype):
    from stacrrn.core.moments import BandSummary

    rng = np.random.default_rng(3)
    if dtype == "float32":
        data = rng.normal(-0.2, 0.1, (3, 64, 80)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, (3, 64, 80), endpoint=True).astype(dtype)
    valid = rng.random(data.shape) > 0.3
    valid[2] = False  # a band with no valid pixel
    summary = BandSummary.empty(3)
    for rows in (slice(0, 10), slice(10, 64)):
        summary.add(data[:, rows], valid[:, rows])
    out = summary.to_list()
    for b in range(2):
        v = data[b][valid[b]].astype(np.float64)
        assert out[b]["minimum"] == v.min() and out[b]["maximum"] == v.max()
        assert out[b]["mean"] == pytest.approx(v.mean(), rel=1e-12, abs=1e-12)
        assert out[b]["stddev"] == pytest.approx(v.std(), rel=1e-9)
        assert out[b]["valid_percent"] == pytest.approx(100 * v.size / data[b].size)
    assert out[2] == {"valid_percent": 0.0}


def test_integer_moments_sum_squares_exactly_in_parts(monkeypatch):
    """Squares of 16-bit values are summed in float64 products of EXACT_SQUARES values: exact integers."""
    from stacrrn.core import moments

    monkeypatch.setattr(moments, "EXACT_SQUARES", 7)  # 1000 values in 143 parts, the last one short
    values = np.random.default_rng(5).integers(0, 65535, 1000, endpoint=True).astype(np.uint16)
    ints = [int(v) for v in values]
    n, mean, m2, lo, hi = moments._integer_moments(values)
    total, squares = sum(ints), sum(v * v for v in ints)
    assert (n, lo, hi) == (1000, min(ints), max(ints))
    assert mean == total / 1000 and m2 == (1000 * squares - total * total) / 1000


def test_pixels_where_gathers_the_masked_pixels_in_order_into_contiguous_rows():
    from stacrrn.core.moments import pixels_where

    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (3, 7, 9))
    mask = rng.random((7, 9)) > 0.4
    got = pixels_where(x, mask)
    assert got.flags["C_CONTIGUOUS"] and got.shape == (3, int(mask.sum()))
    np.testing.assert_array_equal(got, x[:, mask])
    window = x[:, 2:6, 1:8]  # a strided view, as a pair's overlap box
    np.testing.assert_array_equal(pixels_where(window, mask[2:6, 1:8]), window[:, mask[2:6, 1:8]])
