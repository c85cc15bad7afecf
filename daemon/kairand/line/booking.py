"""The booking dialogue's shell: runs the pure machine (kairand.reservations.dialogue) inside the
inbox worker's write transaction, so the capacity check, the booking and the dialogue position
commit together with the inbox row (a crash redoes the event, never half of it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from kairand.audit.chain import AuditEntry
from kairand.conversation.events import Event
from kairand.reservations import calendar
from kairand.reservations import dialogue as booking
from kairand.reservations import service as svc
from kairand.reservations.model import Catalogue, Service
from kairand.store import audit, metrics, residents
from kairand.store import reservations as rstore
from kairand.store.database import Connection


class StoreAvailability:
    """booking.Availability read from the store in the caller's transaction."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now

    def dates(self, service: Service) -> Sequence[tuple[dt.date, int]]:
        return svc.dates_with_room(self.conn, service, self.now, limit=booking.DATES_SHOWN)

    def times(self, service: Service, day: dt.date) -> Sequence[tuple[calendar.Slot, int]]:
        free = svc.day_availability(self.conn, service, day, self.now)
        return [(f.slot, f.remaining) for f in free]


def _mine(b: rstore.Booking) -> booking.MyBooking:
    return booking.MyBooking(b.id, b.number, b.service, b.slot)


def view_of(conn: Connection, catalogue: Catalogue, resident_id: int) -> booking.View:
    active = tuple(_mine(b) for b in rstore.active_of(conn, resident_id))
    contact = booking.usable_contact(rstore.contact_of(conn, resident_id))
    return booking.View(catalogue.active(), active, contact)


def _audit(conn: Connection, now: float, action: str, b: rstore.Booking) -> None:
    audit.append(
        conn,
        AuditEntry(
            at_ms=int(now * 1000),
            actor="resident:line",
            action=action,
            outcome="ok",
            target=f"booking:{b.number}",
            detail={"service": b.service, "slot": b.slot},
        ),
    )


def _book(
    conn: Connection,
    catalogue: Catalogue,
    view: booking.View,
    op: booking.Book,
    resident_id: int,
    state: dict[str, Any],
    now: float,
) -> tuple[booking.BookResult, dict[str, Any]]:
    result = svc.book(
        conn,
        catalogue,
        service_code=op.service,
        slot_key=op.slot,
        now=now,
        resident_id=resident_id,
        channel="line",
        name_kana=op.name_kana,
        phone=op.phone,
        replaces=op.replaces,
    )
    if isinstance(result, svc.Booked):
        b = result.booking
        _audit(conn, now, "reservation.change" if op.replaces else "reservation.book", b)
        metrics.increment(conn, "reservation.booked", int(now))
        done = booking.Done(
            b.number, b.service, b.slot, changed=op.replaces is not None, booking_id=b.id
        )
        return done, {}
    if isinstance(result, svc.Full):
        metrics.increment(conn, "reservation.full", int(now))
        alternatives = tuple((f.slot, f.remaining) for f in result.alternatives)
        keep: dict[str, Any] = {"step": "time", "s": op.service}
        if op.replaces is not None:
            keep["chg"] = op.replaces
        return booking.FullNow(op.service, alternatives), keep
    if isinstance(result, svc.LimitReached):
        return booking.Limit(op.service, _mine(result.active[0])), {}
    return booking.Refused(result.reason), {}


@dataclasses.dataclass(frozen=True)
class Routed:
    replies: list[dict[str, Any]]
    essential: bool
    """The resident must learn the outcome (a booking made, changed or cancelled)."""
    confirmation: tuple[int, str] | None = None
    """(booking id, notice kind) of a booking just made or changed: if the reply cannot be
    made, the confirmation is pushed as that notice, with a stored retry key."""


def route(conn: Connection, event: Event, now: float) -> Routed | None:
    """Handle EVENT if it belongs to the booking dialogue: the replies to send (maybe none),
    whether the resident must learn the outcome, and the booking to confirm by push if the
    reply fails; None when it is not a booking event (the survey machine takes it)."""
    if event.user_id is None or event.kind not in ("text", "postback") or event.standby:
        # Standby: another channel owns the chat and Kairan may not answer — a booking the
        # resident is never told about must not be taken.
        return None
    resident_id, state = rstore.resident_and_dialogue(conn, event.user_id)
    if not booking.wants(event, state):
        return None
    if resident_id is None:
        resident_id = residents.start(conn, event.user_id, int(now))
    _version, catalogue = svc.load_catalogue(conn)
    view = view_of(conn, catalogue, resident_id)
    outcome = booking.handle(event, state, view, StoreAvailability(conn, now), now)
    replies = list(outcome.replies)
    essential = False
    confirmation: tuple[int, str] | None = None
    for op in outcome.ops:
        if isinstance(op, booking.SetDialogue):
            rstore.set_dialogue(conn, resident_id, op.state, int(now))
        elif isinstance(op, booking.KeepContact):
            rstore.keep_contact(conn, resident_id, op.name_kana, op.phone, int(now))
            view = dataclasses.replace(view, contact=(op.name_kana, op.phone))
        elif isinstance(op, booking.Book):
            result, next_state = _book(conn, catalogue, view, op, resident_id, state, now)
            essential = essential or isinstance(result, booking.Done)
            if isinstance(result, booking.Done) and result.booking_id is not None:
                kind = "confirm_change" if result.changed else "confirm"
                confirmation = (result.booking_id, kind)
            rstore.set_dialogue(conn, resident_id, next_state, int(now))
            replies += booking.after_book(result, view).replies
        elif isinstance(op, booking.Cancel):
            cancelled = rstore.cancel(conn, op.booking_id, "resident", int(now))
            if cancelled is not None:
                essential = True
                _audit(conn, now, "reservation.cancel", cancelled)
                metrics.increment(conn, "reservation.cancelled", int(now))
            replies += booking.after_cancel(
                _mine(cancelled) if cancelled is not None else None
            ).replies
    residents.touch(conn, resident_id, int(now))
    return Routed(replies[:5], essential, confirmation)
