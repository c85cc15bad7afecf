"""Recurring delivery rules (pure core): tables of real municipal schedules and properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kairand.delivery.recurrence import (
    RecurrenceRule,
    describe,
    japan_holiday,
    occurrences,
)
from kairand.timeutil import JST


def rule(**kw) -> RecurrenceRule:
    base = {"time": dt.time(8, 0), "start": dt.date(2026, 1, 1)}
    return RecurrenceRule.model_validate({**base, **kw})


def days(found: list[dt.datetime]) -> list[str]:
    return [o.strftime("%Y-%m-%d") for o in found]


@pytest.mark.req("N4")
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        # 第2・第4水曜 (2026-02-11 is 建国記念の日: skipped)
        (
            {"frequency": "monthly_weekday", "weekdays": [2], "nth": [2, 4], "holidays": "skip"},
            ["2026-01-14", "2026-01-28", "2026-02-25", "2026-03-11", "2026-03-25"],
        ),
        # same rule, holidays sent anyway
        (
            {"frequency": "monthly_weekday", "weekdays": [2], "nth": [2, 4]},
            ["2026-01-14", "2026-01-28", "2026-02-11", "2026-02-25", "2026-03-11"],
        ),
        # ごみの日 every Monday and Thursday; 1/1 (Thu) is in 年末年始 and 1/12 is 成人の日:
        # moved to the next business day (1/2 is closed too, so Monday 1/5 — which is also a
        # rule day and sends once)
        (
            {"frequency": "weekly", "weekdays": [0, 3], "holidays": "next_business_day"},
            ["2026-01-05", "2026-01-08", "2026-01-13", "2026-01-15", "2026-01-19"],
        ),
        # moved back: 1/12 成人の日 -> Friday 1/9 (1/1 -> 2025-12-26 is before the start: kept,
        # a rule day moved, not a new rule day)
        (
            {"frequency": "weekly", "weekdays": [0], "holidays": "previous_business_day"},
            ["2026-01-05", "2026-01-09", "2026-01-19", "2026-01-26", "2026-02-02"],
        ),
        # 隔週 (every 2 weeks, counted from the start date's week) on Wednesday
        (
            {"frequency": "weekly", "weekdays": [2], "interval_weeks": 2, "start": "2026-01-05"},
            ["2026-01-07", "2026-01-21", "2026-02-04", "2026-02-18", "2026-03-04"],
        ),
        # the 31st: months without one are skipped
        (
            {"frequency": "monthly_date", "month_days": [31]},
            ["2026-01-31", "2026-03-31", "2026-05-31", "2026-07-31", "2026-08-31"],
        ),
        # last Friday of the month
        (
            {"frequency": "monthly_weekday", "weekdays": [4], "nth": [-1]},
            ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24", "2026-05-29"],
        ),
        # count: 3 occurrences only
        (
            {"frequency": "monthly_date", "month_days": [1, 15], "count": 3, "holidays": "skip"},
            ["2026-01-15", "2026-02-01", "2026-02-15"],
        ),
        # end date
        (
            {"frequency": "weekly", "weekdays": [4], "until": "2026-01-23"},
            ["2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23"],
        ),
    ],
)
def test_rules_from_city_schedules(kw: dict, expected: list[str]) -> None:
    """N4: 第2・第4水曜, weekly ごみの日 with holiday moves, 隔週, month ends, last weekday, count
    and end date give the dates a city office would write on its calendar."""
    assert days(occurrences(rule(**kw), limit=5)) == expected


def test_time_is_japan_time() -> None:
    found = occurrences(rule(frequency="weekly", weekdays=[4], time=dt.time(7, 30)), limit=1)
    assert found[0] == dt.datetime(2026, 1, 2, 7, 30, tzinfo=JST)
    assert found[0].astimezone(dt.UTC).hour == 22


def test_holidays_include_year_end_closure() -> None:
    assert japan_holiday(dt.date(2026, 12, 29)) and japan_holiday(dt.date(2027, 1, 3))
    assert japan_holiday(dt.date(2026, 5, 6))  # 振替休日
    assert not japan_holiday(dt.date(2026, 5, 7))


@pytest.mark.parametrize(
    "kw",
    [
        {"frequency": "weekly"},
        {"frequency": "monthly_date"},
        {"frequency": "monthly_weekday", "weekdays": [2]},
        {"frequency": "monthly_weekday", "weekdays": [2], "nth": [0]},
        {"frequency": "weekly", "weekdays": [7]},
        {"frequency": "weekly", "weekdays": [1], "until": "2025-12-31"},
        {"frequency": "weekly", "weekdays": [1], "count": 0},
        {"frequency": "daily"},
    ],
)
def test_incomplete_rules_are_refused(kw: dict) -> None:
    with pytest.raises(ValidationError):
        rule(**kw)


def test_describe_in_japanese() -> None:
    text = describe(
        rule(
            frequency="monthly_weekday",
            weekdays=[2],
            nth=[4, 2],
            time=dt.time(9, 5),
            count=10,
            holidays="skip",
        )
    )
    assert text == "毎月 第2・第4 水曜 9:05（祝日は送らない、2026年1月1日から、10回）"


rules = st.builds(
    lambda freq, wds, mds, nth, hour, start, until, count, hol, interval: RecurrenceRule(
        frequency=freq,
        weekdays=tuple(wds),
        month_days=tuple(mds),
        nth=tuple(nth),
        time=dt.time(hour, 0),
        start=start,
        until=(start + dt.timedelta(days=until)) if until is not None else None,
        count=count,
        holidays=hol,
        interval_weeks=interval,
    ),
    st.sampled_from(["weekly", "monthly_date", "monthly_weekday"]),
    st.lists(st.integers(0, 6), min_size=1, max_size=3),
    st.lists(st.integers(1, 31), min_size=1, max_size=3),
    st.lists(st.sampled_from([1, 2, 3, 4, 5, -1]), min_size=1, max_size=2),
    st.integers(0, 23),
    st.dates(dt.date(2024, 1, 1), dt.date(2030, 12, 31)),
    st.none() | st.integers(0, 400),
    st.none() | st.integers(1, 30),
    st.sampled_from(["send", "skip", "next_business_day", "previous_business_day"]),
    st.integers(1, 3),
)


@pytest.mark.req("N4")
@settings(max_examples=150, deadline=None)
@given(rules, st.integers(0, 500))
def test_occurrences_properties(r: RecurrenceRule, offset: int) -> None:
    """N4: occurrences are sorted, unique, on the rule's pattern (unless moved), never on a
    holiday when skipping or moving, within count and end date; and resuming from any point
    (the worker's cursor after downtime) gives exactly the rest of the full list."""
    full = occurrences(r, limit=40)
    assert full == sorted(set(full))
    if r.count is not None:
        assert len(full) <= r.count
    for at in full:
        day = at.date()
        assert at.time() == r.time and at.tzinfo == JST
        if r.holidays != "send":
            assert not japan_holiday(day)
        if r.holidays in ("send", "skip"):
            assert day >= r.start
            if r.until is not None:
                assert day <= r.until
            if r.frequency == "weekly":
                assert day.weekday() in r.weekdays
            elif r.frequency == "monthly_date":
                assert day.day in r.month_days
            else:
                assert day.weekday() in r.weekdays
    cut = dt.datetime.combine(r.start, dt.time(0), tzinfo=JST) + dt.timedelta(days=offset)
    rest = occurrences(r, after=cut, limit=10)
    expected = [o for o in full if o > cut][:10]
    if len(full) < 40 or (expected and len(expected) == 10):
        assert rest[: len(expected)] == expected
