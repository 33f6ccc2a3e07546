import numpy as np
import pytest

from stacrrn.core.correct import cast, correct


def test_integer_output_never_becomes_nodata_and_clipping_is_counted():
    corrected = np.array([[[-5.0, 0.2, 0.0, 300.0, 255.4, 7.0]]])
    valid = np.array([[True, True, True, True, True, False]])
    out = cast(corrected, valid, "uint8", 0)
    assert out.data.tolist() == [[[1, 1, 1, 255, 255, 0]]]
    assert out.clipped.tolist() == [2]
    assert out.moved_off_nodata.tolist() == [3]


def test_clipping_is_counted_per_band_over_valid_pixels_only():
    corrected = np.array(
        [
            [[10.0, 20.0], [30.0, 40.0]],  # in range
            [[-3.0, 70000.0], [5.0, 1e9]],  # two valid clips, one invalid out of range
            [[np.inf, np.nan], [-np.inf, 8.0]],  # non-finite values become 0, then move off nodata 0
        ]
    )
    valid = np.array([[True, True], [True, False]])
    out = cast(corrected, valid, "uint16", 0)
    assert out.clipped.tolist() == [0, 2, 0]
    assert out.data[1].tolist() == [[1, 65535], [5, 0]]
    assert out.data[2].tolist() == [[1, 1], [1, 0]]
    assert out.moved_off_nodata.tolist() == [0, 1, 3]


def test_a_value_rounded_onto_nodata_moves_to_the_side_it_came_from():
    """-0.3 and 0.3 both round to nodata 0: one goes to -1, the other to 1 (decided before rounding in place)."""
    corrected = np.array([[[-0.3, 0.3, -0.5, 0.0, -7.0]]])
    out = cast(corrected, np.ones((1, 5), bool), "int16", 0)
    assert out.data.tolist() == [[[-1, 1, -1, 1, -7]]]
    assert out.moved_off_nodata.tolist() == [4]


def test_top_nodata_moves_down():
    out = cast(np.array([[[65535.0, 70000.0, 12.0]]]), np.ones((1, 3), bool), "uint16", 65535)
    assert out.data.tolist() == [[[65534, 65534, 12]]]


@pytest.mark.parametrize("nodata", [-9999.0, 0.0])
def test_float_nodata_is_avoided_by_one_ulp(nodata):
    out = cast(np.array([[[nodata, 0.5]]]), np.ones((1, 2), bool), "float32", nodata)
    assert out.data[0, 0, 0] != np.float32(nodata)
    assert abs(float(out.data[0, 0, 0]) - nodata) < 1e-3


def test_nan_nodata_keeps_valid_values_finite():
    out = cast(np.array([[[np.nan, 0.5]]]), np.array([[True, False]]), "float32", float("nan"))
    assert np.isfinite(out.data[0, 0, 0]) and np.isnan(out.data[0, 0, 1])


def test_correct_applies_field_to_signal_only():
    v = np.full((2, 1, 2), 10.0)
    field = np.full((2, 1, 2), 2.0)
    out = correct(v, np.array([1.5, 1.0]), np.array([1.0, -1.0]), field, np.array([0.5, 0.0]))
    np.testing.assert_allclose(out[0], 2 * 15 + 1 + 0.5)
    np.testing.assert_allclose(out[1], 2 * 10 - 1)


def test_float32_value_rounding_onto_nodata_is_moved():
    out = cast(np.array([[[-9999.0000001, 1.0]]]), np.ones((1, 2), bool), "float32", -9999.0)
    assert out.data[0, 0, 0] != np.float32(-9999.0) and out.moved_off_nodata.tolist() == [1]


def test_without_nodata_invalid_pixels_keep_their_input_values():
    original = np.array([[[np.nan, 2.0]]], dtype="float32")
    out = cast(np.array([[[0.0, 4.0]]]), np.array([[False, True]]), "float32", None, original)
    assert np.isnan(out.data[0, 0, 0]) and out.data[0, 0, 1] == 4.0


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint8", 0), ("uint16", 65535), ("int16", -32768), ("int16", 7), ("float32", -9999.0)]
)
def test_valid_pixels_never_land_on_nodata_whatever_the_range(dtype, nodata):
    """Windows whose range stays clear of nodata skip the check; those near it are caught, invalid ones ignored."""
    rng = np.random.default_rng(11)
    for centre in (nodata - 3.0, nodata, nodata + 0.4, nodata + 5.0, nodata + 2e4):
        corrected = centre + rng.normal(0, 2, (3, 16, 16))
        corrected[1] += 50  # one band far from the others
        valid = rng.random((3, 16, 16)) > 0.2
        out = cast(corrected, valid, dtype, nodata)
        assert not ((out.data == np.asarray(nodata, dtype)) & valid).any()
        lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype != "float32" else (-np.inf, np.inf)
        values = np.clip(np.rint(corrected) if dtype != "float32" else corrected, lo, hi).astype(dtype)
        landed = ((values == np.asarray(nodata, dtype)) & valid).reshape(3, -1).sum(axis=1)
        assert out.moved_off_nodata.tolist() == landed.tolist()
        assert (out.data[~valid] == np.asarray(nodata, dtype)).all()


def test_correct_into_its_own_values_gives_the_same_numbers():
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 4000, (3, 8, 9))
    gain, offset = np.array([0.9, 1.1, 1.3]), np.array([-20.0, 5.0, 40.0])
    field, shift = rng.uniform(0.95, 1.05, values.shape), np.array([1.0, -2.0, 0.5])
    for args in ((None, None), (field, shift)):
        expected = correct(values, gain, offset, *args)
        own = values.copy()
        result = correct(own, gain, offset, *args, out=own)
        assert result is own and np.array_equal(result, expected)
        assert not np.shares_memory(expected, values)  # without out, a new array


@pytest.mark.parametrize(("dtype", "nodata"), [("uint16", 0), ("int16", 7), ("float32", -9999.0), ("uint8", None)])
def test_cast_into_a_given_array_writes_what_it_returns_otherwise(dtype, nodata):
    rng = np.random.default_rng(3)
    corrected = rng.normal(10, 40, (3, 8, 12))  # below 0, on 7, in range
    valid = rng.random((3, 8, 12)) > 0.3
    original = rng.integers(0, 100, (3, 8, 12)).astype(dtype)
    expected = cast(corrected.copy(), valid, dtype, nodata, original)
    into = np.full((3, 8, 12), 99, dtype=dtype)
    got = cast(corrected.copy(), valid, dtype, nodata, original, into=into)
    assert got.data is into
    np.testing.assert_array_equal(into, expected.data)
    assert got.clipped.tolist() == expected.clipped.tolist()
    assert got.moved_off_nodata.tolist() == expected.moved_off_nodata.tolist()
    with pytest.raises(ValueError, match="cast into"):
        cast(corrected.copy(), valid, dtype, nodata, original, into=np.zeros((3, 8, 12), dtype="float64"))
