"""The slot calendar: pure functions from a service definition and a time to bookable slots.

Japan time throughout (JST, no daylight saving). Closed: days the weekly template does not
open, national holidays (the maintained `holidays` package, Japan — substitute and citizens'
holidays included), the year-end closure 12/29–1/3 (閉庁日 of Japanese municipal offices) and
one-off closures; a per-date override wins over all of them (it can open a Saturday or close a
Wednesday afternoon).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kairand.reservations.model import WEEKDAY_LABELS, WEEKDAYS, Period, Service, clock_minutes
from kairand.timeutil import JST as JST

KEY_FORMAT = "%Y-%m-%dT%H:%M"
_KEY_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")


@functools.lru_cache(maxsize=1)
def _japan() -> Any:
    """holidays.Japan, imported and built on first use (it reads its data and translations from
    files: never on the event loop — the calendar runs in the store's threads)."""
    import holidays  # noqa: PLC0415 - deferred: the import reads files (see above)

    return holidays.country_holidays("JP", language="ja")


def holiday_name(day: dt.date) -> str | None:
    """The national holiday on DAY (its English name from the library), or None."""
    name = _japan().get(day)
    return str(name) if name else None


def is_year_end(day: dt.date) -> bool:
    """12/29–1/3: municipal offices are closed (行政機関の休日に関する法律 and local ordinances)."""
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3)


@dataclass(frozen=True, order=True)
class Slot:
    start: dt.datetime
    """Aware, Japan time."""
    minutes: int
    capacity: int

    @functools.cached_property
    def key(self) -> str:
        return slot_key(self.start)

    @functools.cached_property
    def shown(self) -> str:
        """format_slot(start): 10月1日(木) 9:30. Slots are memoised (slots_on), so the booking
        dialogue's labels are formatted once per slot, not once per reply."""
        return format_slot(self.start)

    @functools.cached_property
    def codes(self) -> tuple[str, str]:
        """(YYYYMMDD, HHMM) of the start in Japan time, as the booking postbacks carry them."""
        local = self.start.astimezone(JST)
        return local.strftime("%Y%m%d"), local.strftime("%H%M")

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.minutes)


def slot_key(start: dt.datetime) -> str:
    t = start.astimezone(JST)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}"


def parse_key(key: str) -> dt.datetime | None:
    """The start of slot KEY ("YYYY-MM-DDTHH:MM", Japan time), or None for anything else.
    (fromisoformat on the one exact shape: strptime cost a few percent of the booking rush.)"""
    if not isinstance(key, str) or not _KEY_SHAPE.fullmatch(key):
        return None
    try:
        parsed = dt.datetime.fromisoformat(key)
    except ValueError:
        return None
    return parsed.replace(tzinfo=JST)


def closed_reason(service: Service, day: dt.date) -> str | None:
    """Why DAY has no opening periods by rule (override aside): holiday | year_end | closure |
    weekly, or None when the template opens it."""
    if day in service.closures:
        return "closure"
    if not service.open_on_holidays:
        if is_year_end(day):
            return "year_end"
        if holiday_name(day):
            return "holiday"
    if not service.weekly.get(WEEKDAYS[day.weekday()]):
        return "weekly"
    return None


def periods_on(service: Service, day: dt.date) -> tuple[Period, ...]:
    for override in service.overrides:
        if override.date == day:
            return override.periods
    if closed_reason(service, day) is not None:
        return ()
    return service.weekly.get(WEEKDAYS[day.weekday()], ())


_SLOT_CACHE: dict[tuple[int, dt.date], tuple[Service, tuple[Slot, ...]]] = {}
_SLOT_CACHE_MAX = 20_000


def slots_on(service: Service, day: dt.date) -> list[Slot]:
    """Every slot of DAY (whole slots only: a period's remainder shorter than a slot is unused).

    Memoised per (service object, day): services are frozen, and the catalogue cache hands out
    the same object until the settings change (the entry holds the object, so its id cannot
    be reused while cached)."""
    cached = _SLOT_CACHE.get((id(service), day))
    if cached is not None and cached[0] is service:
        return list(cached[1])
    slots = _compute_slots(service, day)
    if len(_SLOT_CACHE) >= _SLOT_CACHE_MAX:
        _SLOT_CACHE.clear()
    _SLOT_CACHE[(id(service), day)] = (service, tuple(slots))
    return slots


def _compute_slots(service: Service, day: dt.date) -> list[Slot]:
    out: list[Slot] = []
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=JST)
    for period in sorted(periods_on(service, day), key=lambda p: clock_minutes(p.start)):
        capacity = service.capacity if period.capacity is None else period.capacity
        start, end = clock_minutes(period.start), clock_minutes(period.end)
        minute = start
        while minute + service.slot_minutes <= end:
            start_at = midnight + dt.timedelta(minutes=minute)
            out.append(Slot(start_at, service.slot_minutes, capacity))
            minute += service.slot_minutes
    return out


def slot_for(service: Service, key: str) -> Slot | None:
    """The slot of SERVICE starting at KEY, or None when no such slot exists (forged or stale)."""
    start = parse_key(key)
    if start is None:
        return None
    return next((s for s in slots_on(service, start.date()) if s.start == start), None)


def today(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, JST).date()


def window_dates(service: Service, now: float) -> tuple[dt.date, dt.date]:
    """First and last date the booking window can reach at NOW (inclusive)."""
    earliest = dt.datetime.fromtimestamp(now, JST) + dt.timedelta(hours=service.closes_hours_before)
    return earliest.date(), today(now) + dt.timedelta(days=service.opens_days_ahead)


def in_window(service: Service, slot: Slot, now: float) -> bool:
    """The window is open for SLOT: not more than `opens_days_ahead` days before its date, and
    at least `closes_hours_before` hours before it starts."""
    opens = today(now) + dt.timedelta(days=service.opens_days_ahead)
    closes = slot.start - dt.timedelta(hours=service.closes_hours_before)
    return slot.start.date() <= opens and now < closes.timestamp()


def bookable_slots(service: Service, day: dt.date, now: float) -> list[Slot]:
    """The slots of DAY that are in the window at NOW (in_window, with its bounds computed once
    per day rather than per slot: the booking dialogue calls this for every date shown)."""
    if not service.active or day > today(now) + dt.timedelta(days=service.opens_days_ahead):
        return []
    latest = now + service.closes_hours_before * 3600
    return [s for s in slots_on(service, day) if s.capacity > 0 and latest < s.start.timestamp()]


def dates_in_window(service: Service, now: float) -> Iterator[dt.date]:
    first, last = window_dates(service, now)
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


@dataclass(frozen=True)
class _Window:
    service: Service
    valid_from: float
    valid_until: float
    slots: tuple[Slot, ...]


_WINDOW_CACHE: dict[int, _Window] = {}
_WINDOW_CACHE_MAX = 256


def _next_midnight(at: float) -> float:
    """The first JST midnight after AT (a timestamp)."""
    day = dt.datetime.fromtimestamp(at, JST).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=JST).timestamp()


def window_slots(service: Service, now: float) -> tuple[Slot, ...]:
    """Every bookable slot in the booking window at NOW, in time order: `bookable_slots` of
    each date of `dates_in_window`, one after the other.

    The booking rush asks this for every date prompt and every 満席 answer (60 days of the
    window each time); the answer only changes when NOW crosses a JST midnight (the window's
    last date moves), the midnight of NOW + closes_hours_before (its first date moves) or the
    closing time of its first slot (the earliest one leaves the window; later ones close after
    it). It is memoised per service object until the first of those, like `slots_on`: a staff
    edit of the slot settings makes a new catalogue, hence new service objects. Taken places
    are not part of it: callers count them in their own transaction."""
    cached = _WINDOW_CACHE.get(id(service))
    if (
        cached is not None
        and cached.service is service
        and cached.valid_from <= now < cached.valid_until
    ):
        return cached.slots
    slots = tuple(
        s for day in dates_in_window(service, now) for s in bookable_slots(service, day, now)
    )
    closes = service.closes_hours_before * 3600
    until = min(_next_midnight(now), _next_midnight(now + closes) - closes)
    if slots:
        until = min(until, slots[0].start.timestamp() - closes)
    if len(_WINDOW_CACHE) >= _WINDOW_CACHE_MAX:
        _WINDOW_CACHE.clear()
    _WINDOW_CACHE[id(service)] = _Window(service, now, until, slots)
    return slots


def reminder_times(service: Service, slot_start: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(kind, when) of each reminder for a booking at SLOT_START: "dN" N days before at the
    morning time (or 09:00), and "day" on the morning of the day (before the slot starts)."""
    morning = service.reminder_morning
    minutes = clock_minutes(morning) if morning is not None else 9 * 60
    day = slot_start.astimezone(JST).date()
    out: list[tuple[str, dt.datetime]] = []
    for days in sorted(set(service.reminder_days_before), reverse=True):
        when = dt.datetime(day.year, day.month, day.day, tzinfo=JST) + dt.timedelta(
            days=-days, minutes=minutes
        )
        out.append((f"d{days}", when))
    if morning is not None:
        when = dt.datetime(day.year, day.month, day.day, tzinfo=JST) + dt.timedelta(minutes=minutes)
        if when < slot_start:
            out.append(("day", when))
    return out


def format_date(day: dt.date) -> str:
    """10月1日(火) — how dates are shown to residents and staff."""
    return f"{day.month}月{day.day}日({WEEKDAY_LABELS[day.weekday()]})"


def format_slot(start: dt.datetime) -> str:
    local = start.astimezone(JST)
    return f"{format_date(local.date())} {local.hour}:{local.minute:02d}"
