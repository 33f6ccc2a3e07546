"""Time order and the warnings about a time series' dates (the pair graph itself: tests/pipeline/loading)."""

from __future__ import annotations

import datetime as dt

from stacrrn.pipeline.inputs.pairs import date_order, pair_graph, repeated_dates_warning, undated_warning
from stacrrn.pipeline.loading import stac_plan


def day(d: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2021, 3, d, hour, tzinfo=dt.UTC)


def test_the_pair_graph_moved_and_stac_plans_use_the_same_one():
    assert stac_plan.pair_graph is pair_graph


def test_dates_order_the_images_and_ties_keep_their_order():
    assert date_order([day(5), day(1), day(3), day(1)]) == [1, 3, 2, 0]
    # a naive date-time is UTC; an aware one is compared as the instant it is
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert date_order([dt.datetime(2021, 3, 2), dt.datetime(2021, 3, 1, 23, tzinfo=plus_two)]) == [1, 0]
    assert date_order([day(5), None, day(1)]) == [0, 1, 2]  # not every image has a date: as given
    assert date_order([]) == []


def test_one_warning_names_each_repeated_date_and_how_many_share_it():
    assert repeated_dates_warning([day(1), day(2), None, None]) == []  # unknown dates are not compared
    (line,) = repeated_dates_warning([day(1), day(2), day(1), day(1), day(2, 10), day(2, 10)])
    assert line == (
        "time series with repeated dates: 3 items share 2021-03-01T00:00:00Z, 2 items share 2021-03-02T10:00:00Z; "
        "they are paired as different dates (if they are one date, e.g. tiles of one pass, use --mode mosaic)"
    )
    same_instant = [day(1, 12), dt.datetime(2021, 3, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))]
    assert "2 inputs share 2021-03-01T12:00:00Z" in repeated_dates_warning(same_instant, "inputs")[0]
    many = repeated_dates_warning([day(d) for d in range(1, 8) for _ in range(2)])
    assert many[0].count(" share ") == 5 and "(and 2 more dates)" in many[0]


def test_undated_inputs_are_reported_where_the_order_matters():
    names = ["a", "b", "c", "d"]
    assert undated_warning(names, [day(1), day(2), day(3), day(4)], 1) == []
    (partial,) = undated_warning(names, [day(1), None, day(3), None], None)
    assert partial.startswith("no acquisition date for 2 of 4 inputs (b, d): the time series keeps the order given")
    assert "--datetime-from-name PATTERN" in partial
    assert undated_warning(names, [None] * 4, None) == []  # every pair: the order does not matter
    assert undated_warning(names, [None] * 4, 3) == []  # 3 neighbours of 4 dates: every pair too
    (none,) = undated_warning(names, [None] * 4, 1)
    assert "no acquisition date for any input" in none and "in the order given" in none
