"""Service definitions as data: what a resident books, where, when, and how many per slot.

A service (窓口業務) is given at a counter (窓口) on a weekly template of opening periods, cut
into slots of `slot_minutes`, each taking `capacity` people (W5: capacities level the load).
Per-date overrides replace a day's periods (or close it); one-off closures close a day; national
holidays and the year-end closure (12/29–1/3) are closed unless an override opens them. Staff
edit this in the TUI; every edit is stored as a new version (kairand.store.reservations).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,24}$")]
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_LABELS = ("月", "火", "水", "木", "金", "土", "日")


def clock_minutes(value: str) -> int:
    match = _CLOCK.match(value)
    if match is None:
        raise ValueError(f"not a time of day HH:MM: {value!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Model):
    """An opening period of one day, e.g. 09:00–12:00. `capacity` overrides the service's."""

    start: str
    end: str
    capacity: Annotated[int, Field(ge=0, le=100)] | None = None

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        clock_minutes(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if clock_minutes(self.end) <= clock_minutes(self.start):
            raise ValueError("a period must end after it starts")
        return self


class DayOverride(_Model):
    """A date whose periods differ from the weekly template (no periods: closed that day)."""

    date: dt.date
    periods: tuple[Period, ...] = ()
    note: Annotated[str, Field(max_length=100)] = ""


class Service(_Model):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=40)]
    """窓口業務, e.g. 保育所等利用申込 (shown to residents; ≤ 20 characters fit a button)."""
    counter: Annotated[str, Field(min_length=1, max_length=40)]
    """窓口, e.g. 保育幼稚園室 3番窓口."""
    what_to_bring: Annotated[str, Field(max_length=500)] = ""
    slot_minutes: Annotated[int, Field(ge=5, le=240)] = 30
    capacity: Annotated[int, Field(ge=0, le=100)] = 1
    """People per slot unless a period says otherwise (W5)."""
    weekly: dict[str, tuple[Period, ...]] = Field(default_factory=dict)
    """Weekday (mon…sun) → opening periods. A weekday not listed is closed."""
    overrides: tuple[DayOverride, ...] = ()
    closures: tuple[dt.date, ...] = ()
    """One-off closures (臨時休業)."""
    open_on_holidays: bool = False
    """National holidays and 12/29–1/3 are closed unless this is set (or a date override)."""
    opens_days_ahead: Annotated[int, Field(ge=1, le=365)] = 30
    """The booking window: a slot can be booked from this many days before its date…"""
    closes_hours_before: Annotated[int, Field(ge=0, le=720)] = 24
    """…until this many hours before it starts."""
    max_active_per_resident: Annotated[int, Field(ge=1, le=10)] = 1
    """Bookings one resident may hold for this service at once."""
    reminder_days_before: tuple[Annotated[int, Field(ge=1, le=30)], ...] = (1,)
    reminder_morning: str | None = "08:00"
    """Push on the morning of the day at this time (None: no morning reminder)."""
    active: bool = True

    @field_validator("weekly")
    @classmethod
    def _weekdays(cls, value: dict[str, tuple[Period, ...]]) -> dict[str, tuple[Period, ...]]:
        for day, periods in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            _no_overlap(periods)
        return value

    @field_validator("reminder_morning")
    @classmethod
    def _morning(cls, value: str | None) -> str | None:
        if value is not None:
            clock_minutes(value)
        return value

    @model_validator(mode="after")
    def _unique_dates(self) -> Service:
        dates = [o.date for o in self.overrides]
        if len(set(dates)) != len(dates):
            raise ValueError("at most one override per date")
        for override in self.overrides:
            _no_overlap(override.periods)
        return self


def _no_overlap(periods: tuple[Period, ...]) -> None:
    spans = sorted((clock_minutes(p.start), clock_minutes(p.end)) for p in periods)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ValueError("opening periods of one day overlap")


class Catalogue(_Model):
    """Every service (the reservation settings as one versioned document)."""

    services: tuple[Service, ...] = ()

    @model_validator(mode="after")
    def _unique_codes(self) -> Catalogue:
        codes = [s.code for s in self.services]
        if len(set(codes)) != len(codes):
            raise ValueError("service codes must be unique")
        return self

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def active(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.active)


def example_service() -> Service:
    """The nursery-application window of seed 003 (demo, simulator, tests)."""
    morning = Period(start="09:00", end="12:00")
    afternoon = Period(start="13:00", end="17:00")
    return Service(
        code="hoiku",
        name="保育所等利用申込",
        counter="保育幼稚園室 3番窓口",
        what_to_bring="申込書、保護者の就労証明書、本人確認書類、マイナンバーが分かるもの",
        slot_minutes=30,
        capacity=3,
        weekly={d: (morning, afternoon) for d in WEEKDAYS[:5]},
    )
