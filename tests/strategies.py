"""Hypothesis strategies the fuzz tests share."""

from __future__ import annotations

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
"""Arbitrary JSON values."""

ODD_VALUES = (None, "", "x", 0, -1, 1.5, True, [], {}, [1, 2], [1, 2, 3], ["a"], [None], [{}], {"a": 1}, [["k", 1]])
"""Values of the wrong type or shape that parsers commonly trip over."""

garbage = st.one_of(json_values, st.sampled_from(ODD_VALUES))
"""A JSON value where a field of another type belongs."""
