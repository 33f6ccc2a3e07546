"""Hypothesis strategies the fuzz tests share."""

from __future__ import annotations

import copy
from typing import Any

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

DELETE = object()
"""Marks a field to delete in :func:`mutate`."""

Changes = list[tuple[tuple[str | int, ...], object]]
"""Changes to a JSON document: the path of a value and its new value (or :data:`DELETE`)."""


def mutate(doc: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """A copy of ``doc`` with values replaced (or deleted); changes whose parent is gone are skipped."""
    out = copy.deepcopy(doc)
    for path, value in changes:
        parent: Any = out
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)  # sampled values are shared between examples
        except (KeyError, IndexError, TypeError):  # an earlier change removed or replaced its parent
            pass
    return out
