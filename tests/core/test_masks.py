"""Quality-asset decoding against hand-built flag values."""

from __future__ import annotations

import numpy as np
import pytest

from stacrrn.core.masks import probability_clear, qa_pixel_clear, scl_clear


def test_qa_pixel_flags():
    # Landsat C2 values seen in real scenes: 21824 clear land, 21952 clear water, 1 fill,
    # 22280 high-confidence cloud, 23888 cloud shadow, 54596 cirrus, 30048 snow
    qa = np.array([21824, 21952, 1, 22280, 23888, 54596, 30048], dtype=np.uint16)
    assert qa_pixel_clear(qa).tolist() == [True, True, False, False, False, False, False]
    assert qa_pixel_clear(qa, exclude=["fill", "water"]).tolist() == [True, False, False, True, True, True, True]
    with pytest.raises(ValueError, match="haze"):
        qa_pixel_clear(qa, exclude=["haze"])


def test_scl_classes_and_probability():
    scl = np.arange(12, dtype=np.uint8)
    assert np.flatnonzero(scl_clear(scl)).tolist() == [2, 4, 5, 6, 7]
    assert np.flatnonzero(scl_clear(scl, exclude=[0, 9])).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
    assert probability_clear(np.array([0, 39, 40, 100]), 40).tolist() == [True, True, False, False]
