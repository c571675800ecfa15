"""Dates at the precision a rep gave them (flows.periods): readers, keys, display, bounds."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.dates import DateProblem
from flows.periods import (
    day_period,
    from_key,
    half_period,
    month_period,
    part_period,
    quarter_period,
    read_period,
    show_period,
    week_period,
    year_period,
)
from flows.reading import fold

# A Monday in ISO week 50.
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def key(text: str) -> str:
    return read_period(fold(text), NOW).key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明年3月", "2027-03"),
        ("2027年3月", "2027-03"),
        ("三月", "2027-03"),  # March 2026 is long past: next March
        ("3月份", "2027-03"),
        ("12月", "2026-12"),
        ("3月底", "2027-03-late"),
        ("3月下旬", "2027-03-late"),
        ("3月初", "2027-03-early"),
        ("3月上旬", "2027-03-early"),
        ("明年3月中旬", "2027-03-mid"),
        ("月底", "2026-12-late"),
        ("月初", "2026-12-early"),
        ("下个月", "2027-01"),
        ("下月底", "2027-01-late"),
        ("Q2", "2027-Q2"),
        ("q4", "2026-Q4"),
        ("二季度", "2027-Q2"),
        ("2027年第一季度", "2027-Q1"),
        ("明年Q3", "2027-Q3"),
        ("下季度", "2027-Q1"),
        ("明年上半年", "2027-H1"),
        ("下半年", "2026-H2"),
        ("年底", "2026-12"),
        ("明年年底", "2027-12"),
        ("年初", "2027-01"),
        ("春节后", "2027-02-mid"),  # Lantern Festival 2027: 20 Feb
        ("过完年", "2027-02-mid"),
        ("春节前", "2027-02-early"),  # new year's eve 2027: 5 Feb
        ("2028年春节后", "2028-02-early"),  # 26 Jan + 14 days: 9 Feb
        ("下周", "2026-W51"),
        ("本周", "2026-W50"),
        ("明年", "2027"),
        ("2027年", "2027"),
        ("March", "2027-03"),
        ("march 2027", "2027-03"),
        ("late March", "2027-03-late"),
        ("end of March 2027", "2027-03-late"),
        ("mid-april", "2027-04-mid"),
        ("Q2 2027", "2027-Q2"),
        ("2027 Q2", "2027-Q2"),
        ("H1", "2027-H1"),
        ("second half of 2027", "2027-H2"),
        ("next month", "2027-01"),
        ("end of the month", "2026-12-late"),
        ("next quarter", "2027-Q1"),
        ("next week", "2026-W51"),
        ("next year", "2027"),
        ("year end", "2026-12"),
        # Days stay days.
        ("3月15日", "2027-03-15"),
        ("2027-03-15", "2027-03-15"),
        ("下周三", "2026-12-16"),
        ("next Friday", "2026-12-18"),
        ("明天", "2026-12-08"),
    ],
)
def test_reads_at_the_precision_said(text, expected):
    assert key(text) == expected


@pytest.mark.parametrize("text", ["13月", "2027年13月", "第5季度", "h3", "很快", "春节"])
def test_not_a_period(text):
    with pytest.raises(DateProblem):
        key(text)


def test_a_year_outside_the_range_says_so():
    with pytest.raises(DateProblem) as problem:
        key("2150年3月")
    assert problem.value.code == "parse.date_out_of_range"


def test_bounds_of_each_precision():
    assert month_period(2027, 2) == from_key("2027-02")
    assert (from_key("2027-02-late").start, from_key("2027-02-late").end) == (
        date(2027, 2, 21),
        date(2027, 2, 28),
    )
    assert (from_key("2027-Q2").start, from_key("2027-Q2").end) == (
        date(2027, 4, 1),
        date(2027, 6, 30),
    )
    assert (from_key("2027-H2").start, from_key("2027-H2").end) == (
        date(2027, 7, 1),
        date(2027, 12, 31),
    )
    assert (from_key("2026-W51").start, from_key("2026-W51").end) == (
        date(2026, 12, 14),
        date(2026, 12, 20),
    )
    assert from_key("2027").end == date(2027, 12, 31)
    assert from_key("2027-03-15").start == from_key("2027-03-15").end == date(2027, 3, 15)


@pytest.mark.parametrize("odd", [None, 5, "", "soon", "2027-13", "2027-02-30", "2027-W54", "1999"])
def test_odd_stored_values_are_not_periods(odd):
    assert from_key(odd) is None


@pytest.mark.parametrize(
    ("stored", "zh", "en"),
    [
        ("2027-03-15", "2027年3月15日", "Mar 15, 2027"),
        ("2027-03", "2027年3月", "March 2027"),
        ("2027-03-late", "2027年3月下旬", "late March 2027"),
        ("2027-Q2", "2027年第2季度", "Q2 2027"),
        ("2027-H1", "2027年上半年", "H1 2027"),
        ("2026-W51", "2026年第51周", "week 51, 2026"),
        ("2027", "2027年", "2027"),
    ],
)
def test_shown_at_its_precision(stored, zh, en):
    assert (show_period(stored, "zh"), show_period(stored, "en")) == (zh, en)


PERIODS = st.one_of(
    st.dates(date(2000, 1, 1), date(2100, 12, 31)).map(day_period),
    st.builds(month_period, st.integers(2000, 2100), st.integers(1, 12)),
    st.builds(
        part_period,
        st.integers(2000, 2100),
        st.integers(1, 12),
        st.sampled_from(["early", "mid", "late"]),
    ),
    st.builds(quarter_period, st.integers(2000, 2100), st.integers(1, 4)),
    st.builds(half_period, st.integers(2000, 2100), st.integers(1, 2)),
    st.builds(year_period, st.integers(2000, 2100)),
    st.builds(week_period, st.integers(2000, 2100), st.integers(1, 52)),
)


@given(PERIODS)
def test_shown_periods_read_back(period):
    assert from_key(period.key) == period
    for lang in ("zh", "en"):
        assert key(show_period(period.key, lang)) == period.key
