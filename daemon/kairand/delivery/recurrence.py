"""Recurring deliveries: the rule and its occurrences (pure: dates in, dates out).

A rule says when a series sends, in Japan time:

- weekly on chosen weekdays (every N weeks counted from the start date's week);
- monthly on chosen dates (a date a month lacks, e.g. the 31st, is skipped that month);
- monthly on the n-th weekday, e.g. 第2・第4水曜 (`nth=(2, 4)`, `weekdays=(2,)`; -1 = last);

at one time of day, from a start date, until an end date and/or for a number of occurrences
(neither: until staff end it). On a holiday (national holidays from the `holidays` package,
plus the 年末年始 closure 12/29-1/3) an occurrence is sent anyway, skipped, or moved to the next
or previous business day (not a holiday, not Saturday or Sunday). The count counts occurrences
actually sent (a skipped one does not use up the count); the end date bounds the rule's own
dates (a moved occurrence may land shortly after it).

`occurrences(rule, after=...)` is consistent for any `after`: the occurrences after X are exactly
the full list's occurrences after X. The series worker relies on that to resume after downtime
from its cursor.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from typing import Annotated, Literal

import holidays
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairand.timeutil import JST

MAX_SHIFT_DAYS = 21
"""A move never goes further than this (longest closure: Golden Week or 年末年始 plus a
weekend), so scanning that far past a horizon finds every occurrence before it."""
MAX_OCCURRENCES = 1000
WEEKDAY_JA = "月火水木金土日"
HOLIDAY_JA = {
    "send": "祝日も送る",
    "skip": "祝日は送らない",
    "next_business_day": "祝日は翌営業日に送る",
    "previous_business_day": "祝日は前営業日に送る",
}
Holidays = Literal["send", "skip", "next_business_day", "previous_business_day"]


@functools.lru_cache(maxsize=64)
def _japan_year(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def japan_holiday(day: dt.date) -> bool:
    """National holiday (振替休日 included) or the city offices' 年末年始 closure."""
    if (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3):
        return True
    return day in _japan_year(day.year)


class RecurrenceRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    frequency: Literal["weekly", "monthly_date", "monthly_weekday"]
    weekdays: Annotated[tuple[Annotated[int, Field(ge=0, le=6)], ...], Field(max_length=7)] = ()
    """0 = Monday ... 6 = Sunday (weekly, monthly_weekday)."""
    interval_weeks: Annotated[int, Field(ge=1, le=8)] = 1
    """weekly: every N weeks (2 = 隔週)."""
    month_days: Annotated[tuple[Annotated[int, Field(ge=1, le=31)], ...], Field(max_length=31)] = ()
    """monthly_date: days of the month."""
    nth: Annotated[tuple[Annotated[int, Field(ge=-1, le=5)], ...], Field(max_length=6)] = ()
    """monthly_weekday: which weekdays of the month (1-5, -1 = the last)."""
    time: dt.time
    """Japan time of day."""
    start: dt.date
    until: dt.date | None = None
    count: Annotated[int, Field(ge=1, le=MAX_OCCURRENCES)] | None = None
    holidays: Holidays = "send"

    @model_validator(mode="after")
    def _complete(self) -> RecurrenceRule:
        if self.frequency in ("weekly", "monthly_weekday") and not self.weekdays:
            raise ValueError("choose at least one weekday")
        if self.frequency == "monthly_date" and not self.month_days:
            raise ValueError("choose at least one day of the month")
        if self.frequency == "monthly_weekday" and (not self.nth or 0 in self.nth):
            raise ValueError("choose which weekdays of the month (1-5, or -1 for the last)")
        if self.until is not None and self.until < self.start:
            raise ValueError("the end date is before the start date")
        return self


def _base_dates(rule: RecurrenceRule) -> Iterator[dt.date]:
    """The rule's own dates from its start, in order, before holidays and end conditions."""
    if rule.frequency == "weekly":
        days = sorted(set(rule.weekdays))
        week = rule.start - dt.timedelta(days=rule.start.weekday())
        while True:
            for wd in days:
                day = week + dt.timedelta(days=wd)
                if day >= rule.start:
                    yield day
            week += dt.timedelta(weeks=rule.interval_weeks)
    year, month = rule.start.year, rule.start.month
    while True:
        found: set[dt.date] = set()
        if rule.frequency == "monthly_date":
            for d in rule.month_days:
                try:
                    found.add(dt.date(year, month, d))
                except ValueError:
                    continue  # no 31st this month
        else:
            first = dt.date(year, month, 1)
            nxt = dt.date(year + month // 12, month % 12 + 1, 1)
            for wd in rule.weekdays:
                same = [
                    first + dt.timedelta(days=i)
                    for i in range((nxt - first).days)
                    if (first + dt.timedelta(days=i)).weekday() == wd
                ]
                for n in rule.nth:
                    if n == -1:
                        found.add(same[-1])
                    elif n <= len(same):
                        found.add(same[n - 1])
        for day in sorted(found):
            if day >= rule.start:
                yield day
        year, month = year + month // 12, month % 12 + 1


def _business(day: dt.date, is_holiday: Callable[[dt.date], bool]) -> bool:
    return day.weekday() < 5 and not is_holiday(day)


def _adjust(
    day: dt.date, rule: RecurrenceRule, is_holiday: Callable[[dt.date], bool]
) -> dt.date | None:
    if rule.holidays == "send" or not is_holiday(day):
        return day
    if rule.holidays == "skip":
        return None
    step = dt.timedelta(days=1 if rule.holidays == "next_business_day" else -1)
    moved = day + step
    for _ in range(MAX_SHIFT_DAYS):
        if _business(moved, is_holiday):
            return moved
        moved += step
    return None  # pragma: no cover - no closure is that long


def _at(day: dt.date, rule: RecurrenceRule) -> dt.datetime:
    return dt.datetime.combine(day, rule.time, tzinfo=JST)


def occurrences(
    rule: RecurrenceRule,
    *,
    after: dt.datetime | None = None,
    limit: int = 10,
    is_holiday: Callable[[dt.date], bool] = japan_holiday,
) -> list[dt.datetime]:
    """Up to LIMIT occurrences strictly after AFTER (all from the start when None), in order,
    each once (two rule dates moved onto the same day send once)."""
    out: set[dt.datetime] = set()
    sent = 0
    earliest_needed: dt.date | None = None
    for base in _base_dates(rule):
        if rule.until is not None and base > rule.until:
            break
        if rule.count is not None and sent >= rule.count:
            break
        # Enough found, and no later rule date can move before the LIMIT-th one any more.
        if earliest_needed is not None and base > earliest_needed + dt.timedelta(
            days=MAX_SHIFT_DAYS
        ):
            break
        day = _adjust(base, rule, is_holiday)
        if day is None:
            continue
        at = _at(day, rule)
        if at in out:
            continue  # moved onto another occurrence's day: it is that occurrence
        out.add(at)
        sent += 1
        if after is None or at > after:
            later = sorted(o for o in out if after is None or o > after)
            if len(later) >= limit:
                earliest_needed = later[limit - 1].date()
    later = sorted(o for o in out if after is None or o > after)
    return later[:limit]


def describe(rule: RecurrenceRule) -> str:
    """The rule in staff Japanese, e.g. 毎月 第2・第4 水曜 9:00（祝日は送らない）."""
    days = "・".join(WEEKDAY_JA[d] for d in sorted(set(rule.weekdays)))
    if rule.frequency == "weekly":
        head = ("毎週" if rule.interval_weeks == 1 else f"{rule.interval_weeks}週ごと") + (
            f" {days}曜"
        )
    elif rule.frequency == "monthly_date":
        head = "毎月 " + "・".join(f"{d}日" for d in sorted(set(rule.month_days)))
    else:
        nths = "・".join("最終" if n == -1 else f"第{n}" for n in sorted(set(rule.nth), key=_nth))
        head = f"毎月 {nths} {days}曜"
    end = ""
    if rule.until is not None:
        end += f"、{rule.until.year}年{rule.until.month}月{rule.until.day}日まで"
    if rule.count is not None:
        end += f"、{rule.count}回"
    start = f"{rule.start.year}年{rule.start.month}月{rule.start.day}日から"
    when = f"{rule.time.hour}:{rule.time.minute:02d}"
    return f"{head} {when}（{HOLIDAY_JA[rule.holidays]}、{start}{end}）"


def _nth(n: int) -> int:
    return 99 if n == -1 else n
