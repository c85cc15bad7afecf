"""Reservation operations over the store, for the chat, the staff API and the workers.

Each function takes the caller's connection and runs inside its write (or read) transaction:
the calendar (pure) says which slots exist and whether the window is open; the store counts
and takes the place in the same transaction (kairand.store.reservations.take).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from kairand.reservations import calendar
from kairand.reservations.model import Catalogue, Service
from kairand.store import reservations as store
from kairand.store.database import Connection

_cache_lock = threading.Lock()
_cache: dict[str, Catalogue] = {}


def load_catalogue(conn: Connection) -> tuple[int, Catalogue]:
    """The current catalogue (version 0 and no services before the first save). Parsed
    catalogues are cached by content: the rush reads it once per event."""
    current = store.current_catalogue(conn)
    if current is None:
        return 0, Catalogue()
    version, text = current
    with _cache_lock:
        cached = _cache.get(text)
    if cached is None:
        cached = Catalogue.model_validate_json(text)
        with _cache_lock:
            _cache.clear()
            _cache[text] = cached
    return version, cached


def save_catalogue(conn: Connection, catalogue: Catalogue, created_by: str, now: int) -> int:
    return store.save_catalogue(conn, catalogue.model_dump_json(), created_by, now)


@dataclass(frozen=True)
class Free:
    slot: calendar.Slot
    remaining: int


def day_availability(conn: Connection, service: Service, day: dt.date, now: float) -> list[Free]:
    """Bookable slots of DAY with their remaining places (full ones included, remaining 0)."""
    slots = calendar.bookable_slots(service, day, now)
    used = store.taken(conn, service.code, (s.key for s in slots))
    return [Free(s, max(0, s.capacity - used.get(s.key, 0))) for s in slots]


def dates_with_room(
    conn: Connection, service: Service, now: float, limit: int = 31
) -> list[tuple[dt.date, int]]:
    """Dates in the booking window with at least one free place (and how many), first LIMIT."""
    first, last = calendar.window_dates(service, now)
    used = store.taken_between(
        conn, service.code, f"{first.isoformat()}T00:00", f"{last.isoformat()}T23:59"
    )
    out: list[tuple[dt.date, int]] = []
    room_of: dict[dt.date, int] = {}
    for s in calendar.window_slots(service, now):  # in time order, so dates in order too
        day = s.start.date()
        room_of[day] = room_of.get(day, 0) + max(0, s.capacity - used.get(s.key, 0))
    for day, room in room_of.items():
        if room:
            out.append((day, room))
            if len(out) >= limit:
                break
    return out


def next_free(
    conn: Connection,
    service: Service,
    after: dt.datetime,
    now: float,
    limit: int = 5,
    staff: bool = False,
) -> list[Free]:
    """Up to LIMIT slots with room: those starting at or after AFTER first (nearest first),
    then earlier ones — in the booking window for residents, in the next two weeks for staff.
    Earlier times count too: the slot that filled may have been the last late one."""
    if staff:
        days = [after.date() + dt.timedelta(days=i) for i in range(14)]
        slots = [s for day in days for s in calendar.slots_on(service, day)]
        first, last = days[0], days[-1]
    else:
        # The window's slots are memoised (calendar.window_slots): a rush's 満席 answers no
        # longer rebuild 60 days of calendar each; the places taken are counted here, now.
        slots = list(calendar.window_slots(service, now))
        if not slots:
            return []
        first, last = slots[0].start.date(), slots[-1].start.date()
    # One query for the whole range (the race loser's answer; a rush makes many of them).
    used = store.taken_between(
        conn, service.code, f"{first.isoformat()}T00:00", f"{last.isoformat()}T23:59"
    )
    later: list[Free] = []
    earlier: list[Free] = []
    for s in slots:  # in time order: every earlier slot comes before every later one
        remaining = max(0, s.capacity - used.get(s.key, 0))
        if not remaining:
            continue
        if s.start >= after:
            later.append(Free(s, remaining))
            if len(later) >= limit:
                break
        else:
            earlier.append(Free(s, remaining))
    return (later + earlier[::-1])[:limit]


@dataclass(frozen=True)
class Booked:
    booking: store.Booking


@dataclass(frozen=True)
class Full:
    """The slot filled up before this request: the next free times to offer instead."""

    alternatives: tuple[Free, ...]


@dataclass(frozen=True)
class LimitReached:
    active: tuple[store.Booking, ...]


@dataclass(frozen=True)
class NotBookable:
    reason: str
    """unknown_service | unknown_slot | window | not_found"""


BookResult = Booked | Full | LimitReached | NotBookable


def book(
    conn: Connection,
    catalogue: Catalogue,
    *,
    service_code: str,
    slot_key: str,
    now: float,
    resident_id: int | None,
    channel: str,
    name_kana: str | None,
    phone: str | None,
    replaces: int | None = None,
    staff: bool = False,
) -> BookResult:
    """Book (or, with REPLACES, move a booking to) SLOT_KEY. Staff (phone bookings, changes at
    the desk) may book outside the resident window but never above capacity."""
    service = catalogue.service(service_code)
    if service is None or not (service.active or staff):
        return NotBookable("unknown_service")
    slot = calendar.slot_for(service, slot_key)
    if slot is None:
        return NotBookable("unknown_slot")
    if not staff and not calendar.in_window(service, slot, now):
        return NotBookable("window")
    if replaces is not None:
        old = store.get(conn, replaces)
        if (
            old is None
            or old.state != "active"
            or (resident_id is not None and old.resident_id != resident_id)
        ):
            return NotBookable("not_found")
        if old.service != service.code:
            return NotBookable("unknown_service")
    elif resident_id is not None:
        active = store.active_of(conn, resident_id, service.code)
        if len(active) >= service.max_active_per_resident:
            return LimitReached(tuple(active))
    booking = store.take(
        conn,
        service=service.code,
        slot=slot.key,
        slot_at=int(slot.start.timestamp()),
        capacity=slot.capacity,
        resident_id=resident_id,
        channel=channel,
        name_kana=name_kana,
        phone=phone,
        now=int(now),
        replaces=replaces,
    )
    if booking is None:
        # Ten times, not five: a rush piles onto whatever is offered, so offer more of it.
        return Full(tuple(next_free(conn, service, slot.start, now, limit=10, staff=staff)))
    return Booked(booking)
