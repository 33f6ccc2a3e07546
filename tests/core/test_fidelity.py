import numpy as np
import pytest
import rasterio

from stacrrn.core.fidelity import FidelitySums
from tests.conftest import S2_TILES, needs_shared


def sums_of(before, after, valid=None, clipped=None):
    s = FidelitySums(before.shape[0])
    s.add(before, after, np.ones(before.shape[1:], bool) if valid is None else valid, clipped)
    return s


def test_identical_output_is_perfectly_faithful():
    x = np.random.default_rng(0).integers(0, 1000, (3, 16, 24)).astype(np.uint16)
    d = sums_of(x, x).to_dict()
    assert d["correlation"] == pytest.approx([1, 1, 1], abs=1e-12)
    assert d["ssim"] == pytest.approx([1, 1, 1], abs=1e-6)
    assert d["spectral_angle_deg"] == pytest.approx(0, abs=1e-5)
    assert d["clipped_fraction"] == [0, 0, 0]
    assert d["pixels"] == 16 * 24


def test_ssim_of_one_window_by_hand():
    x = np.arange(64, dtype=float).reshape(1, 8, 8)
    # mean 31.5 and 63, variance (64^2 - 1) / 12 = 341.25 and 4x, covariance 2x; L = 63
    c1, c2 = (0.01 * 63) ** 2, (0.03 * 63) ** 2
    expected = (2 * 31.5 * 63 + c1) * (2 * 682.5 + c2) / ((31.5**2 + 63**2 + c1) * (341.25 + 1365 + c2))
    s = sums_of(x, 2 * x)
    assert s.ssim()[0] == pytest.approx(expected, rel=1e-6)
    assert s.correlation()[0] == pytest.approx(1.0)


def test_ssim_skips_windows_with_invalid_pixels_and_partial_edges():
    x = np.arange(16 * 20, dtype=float).reshape(1, 16, 20)
    valid = np.ones((16, 20), bool)
    valid[0, 0] = False  # spoils the first of the 2 x 2 whole windows; columns 16..19 are no window
    y = x.copy()
    y[:, 8:16, 0:8] = 0  # the only whole window that differs is at (1, 0)
    s = sums_of(x, y, valid)
    assert len(s.windows) == 1 and s.windows[0].shape == (5, 1, 3)
    lone = sums_of(x[:, 8:16, 0:8], y[:, 8:16, 0:8])
    lone.minimum, lone.maximum = s.minimum, s.maximum  # same data range
    assert s.ssim()[0] == pytest.approx((2 + lone.ssim()[0]) / 3, rel=1e-6)


def test_spectral_angle_by_hand():
    before = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]).reshape(2, 1, 3)
    after = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).reshape(2, 1, 3)
    s = sums_of(before, after)
    # 90 and 45 degrees; the zero vector is left out
    assert s.spectral_angle() == pytest.approx(67.5)
    assert s.angle_pixels == 2


def test_correlation_sign_and_clipped_fraction():
    x = np.random.default_rng(1).normal(size=(2, 10, 10))
    valid = np.ones((2, 10, 10), bool)
    valid[1, :5] = False  # band 2 has 50 valid pixels
    s = sums_of(x, 3 - x, valid, np.array([10, 10]))
    assert s.correlation() == pytest.approx([-1, -1])
    assert s.clipped_fraction() == pytest.approx([0.1, 0.2])
    assert s.pixels == 50


def test_merging_windows_equals_the_whole_image():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4000, (4, 64, 48)).astype(np.uint16)
    y = (x * 1.1 + rng.normal(0, 30, x.shape)).astype(np.float32)
    whole = sums_of(x, y)
    parts = sums_of(x[:, :32], y[:, :32])
    parts.merge(sums_of(x[:, 32:], y[:, 32:]))
    a, b = whole.to_dict(), parts.to_dict()
    for key in ("correlation", "ssim", "clipped_fraction"):
        assert a[key] == pytest.approx(b[key], rel=1e-6)
    assert a["spectral_angle_deg"] == pytest.approx(b["spectral_angle_deg"], rel=1e-9)


@needs_shared
def test_known_distortions_of_a_real_image():
    with rasterio.open(S2_TILES[0]) as src:
        x = src.read([1, 2, 3, 4], window=((0, 256), (0, 256))).astype(np.float64)
    gain = np.array([1.2, 0.8, 1.0, 1.1])[:, None, None]
    # a gain and offset per band keep the correlation at 1 but open the spectral angle
    affine = sums_of(x, gain * x + 100)
    assert affine.correlation() == pytest.approx(np.ones(x.shape[0]), abs=1e-12)
    assert affine.spectral_angle() > 0.5
    # a common gain keeps the angle at 0
    assert sums_of(x, 1.3 * x).spectral_angle() == pytest.approx(0, abs=1e-5)
    # white noise of std s: correlation sqrt(var / (var + s^2))
    noise = np.random.default_rng(3).normal(0, 1, x.shape) * x.std(axis=(1, 2), keepdims=True)
    noisy = sums_of(x, x + noise)
    assert noisy.correlation() == pytest.approx(np.full(x.shape[0], np.sqrt(0.5)), abs=0.01)
    assert np.all(noisy.ssim() < affine.ssim() + 1)  # defined and finite
    assert np.all((noisy.ssim() > 0) & (noisy.ssim() < 0.9))


def test_strips_masks_and_edges_match_direct_formulas():
    """150 x 44 pixels (a short last strip, columns beyond the last window), nodata holes."""
    rng = np.random.default_rng(4)
    x = rng.integers(100, 3000, (3, 150, 44)).astype(np.uint16)
    y = (x * np.array([1.1, 0.9, 1.0])[:, None, None] + rng.normal(0, 40, x.shape)).clip(0).astype(np.uint16)
    valid = rng.random((150, 44)) > 0.02
    s = sums_of(x, y, valid, np.array([1, 2, 3]))
    xs, ys = x[:, valid].astype(float), y[:, valid].astype(float)
    assert s.correlation() == pytest.approx([np.corrcoef(a, b)[0, 1] for a, b in zip(xs, ys, strict=True)], rel=1e-12)
    cos = (xs * ys).sum(0) / np.sqrt((xs * xs).sum(0) * (ys * ys).sum(0))
    assert s.spectral_angle() == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), rel=1e-12)
    L = xs.max(axis=1) - xs.min(axis=1)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    per_window = []
    for r in range(0, 144, 8):
        for c in range(0, 40, 8):
            if not valid[r : r + 8, c : c + 8].all():
                continue
            a = x[:, r : r + 8, c : c + 8].reshape(3, -1).astype(float)
            b = y[:, r : r + 8, c : c + 8].reshape(3, -1).astype(float)
            ma, mb = a.mean(1), b.mean(1)
            va, vb, cab = a.var(1), b.var(1), ((a - ma[:, None]) * (b - mb[:, None])).mean(1)
            per_window.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert s.ssim() == pytest.approx(np.mean(per_window, axis=0), rel=1e-6)
    d = s.to_dict()
    assert d["mean_before"] == pytest.approx(xs.mean(1)) and d["std_after"] == pytest.approx(ys.std(1))
    assert d["clipped_fraction"] == pytest.approx(np.array([1, 2, 3]) / valid.sum())


def test_sample_measures_every_nth_strip_of_image_rows_whatever_the_windows():
    """every=3: image rows 0-7, 24-31, 48-55 ...; windows of 64 or 96 rows give the same sums."""
    rng = np.random.default_rng(5)
    x = rng.integers(100, 3000, (3, 250, 40)).astype(np.uint16)
    y = (x * 1.05 + rng.normal(0, 25, x.shape)).clip(0).astype(np.uint16)
    valid = rng.random((250, 40)) > 0.03
    clipped = np.array([2, 0, 1])
    strips = np.zeros(250, bool)
    for r0 in range(0, 250, 24):
        strips[r0 : r0 + 8] = True
    expected = sums_of(x[:, strips], y[:, strips], valid[strips]).to_dict()
    for height in (64, 96):
        sampled = FidelitySums(3, every=3)
        for r0 in range(0, 250, height):
            rows = slice(r0, r0 + height)
            sampled.add(x[:, rows], y[:, rows], valid[rows], clipped if r0 == 0 else None, row0=r0)
        got = sampled.to_dict()
        assert got["sample_every"] == 3 and expected["sample_every"] == 1
        assert got["pixels"] == expected["pixels"] == int(valid[strips].sum())
        for key in ("correlation", "ssim", "mean_before", "std_after"):
            assert got[key] == pytest.approx(expected[key], rel=1e-12)
        assert got["spectral_angle_deg"] == pytest.approx(expected["spectral_angle_deg"], rel=1e-12)
        # the clipped share still counts every valid pixel
        assert got["clipped_fraction"] == pytest.approx(clipped / valid.sum(), rel=1e-12)


@needs_shared
def test_quarter_sample_of_a_real_image_is_close_to_every_pixel():
    with rasterio.open(S2_TILES[0]) as src:
        x = src.read([1, 2, 3, 4], window=((0, 512), (0, 512)))
    y = (x * np.array([1.2, 0.8, 1.0, 1.1])[:, None, None] + 100).round().astype(np.uint16)
    valid = np.ones(x.shape[1:], bool)
    exact, quarter = FidelitySums(4), FidelitySums(4, every=4)
    exact.add(x, y, valid)
    quarter.add(x, y, valid)
    rows, cols = x.shape[1:]
    assert quarter.pixels == cols * sum(min(8, rows - r0) for r0 in range(0, rows, 32))
    assert quarter.ssim() == pytest.approx(exact.ssim(), abs=0.01)  # 73k pixels; closer on larger images
    assert quarter.correlation() == pytest.approx(exact.correlation(), abs=1e-4)
    assert quarter.spectral_angle() == pytest.approx(exact.spectral_angle(), rel=0.05)
    assert quarter.ssim() != pytest.approx(exact.ssim(), abs=1e-12)  # a real sample, not the same pixels


def test_sample_step_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        FidelitySums(2, every=0)
