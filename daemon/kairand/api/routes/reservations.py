"""Staff API for window reservations: the desk (W3), phone bookings, changes,
cancellations, 来庁/不来庁, the slot settings (W5) and statistics (W4).

Names and phones leave the daemon only in the desk answer, only for the 窓口担当 role (the
roles table), and every such answer is in the audit with how many bookings it showed (S8).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from aiohttp import web

from kairand.api import reservation_schema as rs
from kairand.api.http import config_of, json_body, note, ok, query, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.api.statistics import Cell, suppress
from kairand.audit.chain import AuditEntry
from kairand.reservations import calendar, notices, stats
from kairand.reservations import service as svc
from kairand.reservations.contact import Invalid, normalise_kana, normalise_phone
from kairand.reservations.model import Catalogue, Service
from kairand.store import audit
from kairand.store import reservations as rstore
from kairand.store.database import Connection


def _service(catalogue: Catalogue, code: str | None) -> Service:
    found = catalogue.service(code) if code else (catalogue.services or (None,))[0]
    if found is None:
        raise ApiProblem(
            "not-found",
            "その窓口業務はありません。予約枠の設定を確認してください。",
            field="service",
        )
    return found


def _booking_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise ApiProblem("not-found", "その予約はありません。") from None


def _out(b: rstore.Booking) -> rs.DeskBooking:
    return rs.DeskBooking(
        id=b.id,
        number=b.number,
        service=b.service,
        slot=b.slot,
        state=b.state,  # type: ignore[arg-type]
        channel=b.channel,  # type: ignore[arg-type]
        name_kana=b.name_kana,
        phone=b.phone,
        cancelled_by=b.cancelled_by,
        created_at=dt.datetime.fromtimestamp(b.created_at, calendar.JST),
    )


# -- settings (W5) ---------------------------------------------------------------------------


async def services_get(request: web.Request) -> web.Response:
    version, catalogue = await store_of(request).read(svc.load_catalogue)
    return ok(rs.ReservationServices(version=version, catalogue=catalogue))


async def services_put(request: web.Request) -> web.Response:
    body = await json_body(request, rs.ReservationServicesUpdate)
    actor = staff_of(request).username
    version = await store_of(request).write(
        svc.save_catalogue, body.catalogue, actor, int(time.time())
    )
    note(request, version=version, services=len(body.catalogue.services))
    return ok(rs.ReservationServicesUpdated(version=version))


# -- the desk (W3) ---------------------------------------------------------------------------


def _desk(conn: Connection, q: rs.DeskQuery, now: float) -> rs.Desk:
    _version, catalogue = svc.load_catalogue(conn)
    service = _service(catalogue, q.service)
    first = q.first or calendar.today(now)
    slots: list[rs.DeskSlot] = []
    for offset in range(q.days):
        day = first + dt.timedelta(days=offset)
        day_slots = calendar.slots_on(service, day)
        used = rstore.taken(conn, service.code, (s.key for s in day_slots))
        slots += [
            rs.DeskSlot(slot=s.key, capacity=s.capacity, taken=used.get(s.key, 0))
            for s in day_slots
        ]
    start = dt.datetime(first.year, first.month, first.day, tzinfo=calendar.JST)
    end = start + dt.timedelta(days=q.days)
    bookings = rstore.in_range(conn, int(start.timestamp()), int(end.timestamp()), service.code)
    if q.state is not None:
        bookings = [b for b in bookings if b.state == q.state]
    return rs.Desk(
        service=service.code,
        service_name=service.name,
        counter=service.counter,
        first=first,
        days=q.days,
        slots=slots,
        bookings=[_out(b) for b in bookings],
    )


async def desk(request: web.Request) -> web.Response:
    q = query(request, rs.DeskQuery)
    result = await store_of(request).read(_desk, q, time.time())
    shown = sum(1 for b in result.bookings if b.name_kana or b.phone)
    # S8: the audit entry of this call records that personal data was shown, and how much.
    note(
        request,
        service=result.service,
        first=result.first.isoformat(),
        days=result.days,
        personal_data_shown=shown,
    )
    return ok(result)


def _audit(conn: Connection, actor: str, action: str, b: rstore.Booking, **extra: Any) -> None:
    audit.append(
        conn,
        AuditEntry(
            at_ms=int(time.time() * 1000),
            actor=actor,
            action=action,
            outcome="ok",
            target=f"booking:{b.number}",
            detail={"service": b.service, "slot": b.slot, **extra},
        ),
    )


def _full(result: svc.Full) -> ApiProblem:
    times = "、".join(calendar.format_slot(f.slot.start) for f in result.alternatives[:5])
    detail = "その時間は満席です。" + (f"空きのある時間：{times}" if times else "")
    return ApiProblem(
        "conflict",
        detail,
        field="slot",
        code="full",
        extra={"alternatives": [f.slot.key for f in result.alternatives]},
    )


def _refused(result: svc.NotBookable) -> ApiProblem:
    messages = {
        "unknown_service": ("その窓口業務はありません。", "service"),
        "unknown_slot": (
            "その日時は予約枠にありません（休業日か、枠の開始時刻ではありません）。",
            "slot",
        ),
        "not_found": ("その予約は見つからないか、すでに取り消されています。", "id"),
    }
    message, field = messages.get(result.reason, ("この予約はできません。", "slot"))
    kind = "conflict" if result.reason == "not_found" else "validation"
    return ApiProblem(kind, message, field=field, code=result.reason)


def _contact(body: rs.PhoneBooking) -> tuple[str, str]:
    kana = normalise_kana(body.name_kana)
    if isinstance(kana, Invalid):
        raise ApiProblem("validation", kana.message, field="name_kana")
    phone = normalise_phone(body.phone)
    if isinstance(phone, Invalid):
        raise ApiProblem("validation", phone.message, field="phone")
    return kana, phone


def _phone_booking(
    conn: Connection, body: rs.PhoneBooking, actor: str, now: float
) -> svc.BookResult:
    # Validated here, in the store's thread: phonenumbers loads its metadata from files.
    kana, phone = _contact(body)
    _version, catalogue = svc.load_catalogue(conn)
    result = svc.book(
        conn,
        catalogue,
        service_code=body.service,
        slot_key=body.slot,
        now=now,
        resident_id=None,
        channel="phone",
        name_kana=kana,
        phone=phone,
        staff=True,
    )
    if isinstance(result, svc.Booked):
        _audit(conn, actor, "reservation.book", result.booking, channel="phone")
    return result


def _answer(request: web.Request, result: svc.BookResult, status: int = 200) -> web.Response:
    if isinstance(result, svc.Full):
        raise _full(result)
    if isinstance(result, svc.NotBookable):
        raise _refused(result)
    assert isinstance(result, svc.Booked)
    note(request, booking=result.booking.number, slot=result.booking.slot)
    return ok(_out(result.booking), status)


async def book(request: web.Request) -> web.Response:
    body = await json_body(request, rs.PhoneBooking)
    actor = staff_of(request).username
    result = await store_of(request).write(_phone_booking, body, actor, time.time())
    return _answer(request, result, 201)


def _change(conn: Connection, booking_id: int, slot: str, actor: str, now: float) -> svc.BookResult:
    old = rstore.get(conn, booking_id)
    if old is None or old.state != "active":
        return svc.NotBookable("not_found")
    _version, catalogue = svc.load_catalogue(conn)
    result = svc.book(
        conn,
        catalogue,
        service_code=old.service,
        slot_key=slot,
        now=now,
        resident_id=old.resident_id,
        channel=old.channel,
        name_kana=old.name_kana,
        phone=old.phone,
        replaces=old.id,
        staff=True,
    )
    if isinstance(result, svc.Booked):
        _audit(conn, actor, "reservation.change", result.booking, replaces=old.number)
        new = result.booking
        if new.channel == "line" and new.resident_id is not None:
            # The LINE booker is told the new time and number (a push with a stored retry key).
            rstore.reserve_notice(conn, new.id, "staff_change", str(uuid.uuid4()), int(now))
    return result


async def change(request: web.Request) -> web.Response:
    body = await json_body(request, rs.BookingChange)
    actor = staff_of(request).username
    result = await store_of(request).write(
        _change, _booking_id(request), body.slot, actor, time.time()
    )
    if isinstance(result, svc.Booked):
        notices.wake(request.app)  # the resident is told now, not at the worker's next tick
    return _answer(request, result)


def _cancel(conn: Connection, booking_id: int, actor: str, now: float) -> rstore.Booking | None:
    cancelled = notices.staff_cancel(conn, booking_id, actor, int(now))
    if cancelled is not None:
        _audit(conn, actor, "reservation.cancel", cancelled, by="staff")
    return cancelled


async def cancel(request: web.Request) -> web.Response:
    body = await json_body(request, rs.BookingCancel)
    actor = staff_of(request).username
    cancelled = await store_of(request).write(_cancel, _booking_id(request), actor, time.time())
    if cancelled is None:
        raise ApiProblem("conflict", "その予約は見つからないか、すでに取り消されています。")
    notices.wake(request.app)  # the resident is told now, not at the worker's next tick
    note(request, booking=cancelled.number, reason_given=bool(body.reason))
    return ok(_out(cancelled))


async def outcome(request: web.Request) -> web.Response:
    body = await json_body(request, rs.BookingOutcome)
    result = await store_of(request).write(
        rstore.set_outcome, _booking_id(request), body.outcome, int(time.time())
    )
    if result is None:
        raise ApiProblem("conflict", "その予約は見つからないか、取り消されています。")
    note(request, booking=result.number, outcome=body.outcome)
    return ok(_out(result))


# -- statistics (W4) -------------------------------------------------------------------------


def _stats(conn: Connection, first: dt.date, last: dt.date) -> tuple[list[stats.Row], Catalogue]:
    start = dt.datetime(first.year, first.month, first.day, tzinfo=calendar.JST)
    end = dt.datetime(last.year, last.month, last.day, tzinfo=calendar.JST) + dt.timedelta(days=1)
    rows = [
        stats.Row(service, slot, state, created)
        for service, slot, state, created, _ in rstore.stat_rows(
            conn, int(start.timestamp()), int(end.timestamp())
        )
    ]
    return rows, svc.load_catalogue(conn)[1]


def _suppressed(lines: list[stats.Line], k: int) -> stats.Shown:
    """W4 as elsewhere (kairand.api.statistics): within one dimension the values partition the
    bookings, so each outcome column is suppressed with the complementary rule — a hidden cell
    cannot be recovered by subtracting the others from the service total."""
    out: stats.Shown = {}
    for dimension in stats.DIMENSIONS:
        of_dimension = [line for line in lines if line.dimension == dimension]
        for outcome in stats.OUTCOMES:
            cells = [Cell(line.key, line.label, line.counts[outcome]) for line in of_dimension]
            # Zero cells reveal nothing and stay 0; the rest are suppressed together.
            nonzero = [c for c in cells if c.count]
            for published in suppress(nonzero, k, partition=True):
                out[(dimension, published.code, outcome)] = published.display
            for cell in cells:
                out.setdefault((dimension, cell.code, outcome), "0")
    return out


async def statistics(request: web.Request) -> web.StreamResponse:
    q = query(request, rs.ReservationStatsQuery)
    today = calendar.today(time.time())
    last = q.last or today
    first = q.first or last - dt.timedelta(days=30)
    if first > last:
        raise ApiProblem("validation", "開始日は終了日より前にしてください。", field="first")
    rows, catalogue = await store_of(request).read(_stats, first, last)
    names = {s.code: s.name for s in catalogue.services}
    lines = stats.tabulate(rows, names)
    k = config_of(request).privacy.small_cell_threshold
    shown_as = _suppressed(lines, k)
    note(request, first=first.isoformat(), last=last.isoformat(), format=q.format)
    if q.format == "csv":
        return web.Response(
            body=stats.to_csv(lines, k, shown_as),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="reservations-{first}-{last}.csv"'
            },
        )
    out = rs.ReservationStats(
        first=first,
        last=last,
        small_cell_threshold=k,
        lines=[
            rs.ReservationStatsLine(
                dimension=line.dimension,
                dimension_label=stats.DIMENSION_LABELS[line.dimension],
                key=line.key,
                label=line.label,
                counts={o: shown_as[(line.dimension, line.key, o)] for o in line.counts},
            )
            for line in lines
        ],
    )
    return ok(out)


HANDLERS = {
    "reservations.services": services_get,
    "reservations.services.put": services_put,
    "reservations.bookings": desk,
    "reservations.book": book,
    "reservations.change": change,
    "reservations.cancel": cancel,
    "reservations.outcome": outcome,
    "reservations.statistics": statistics,
}
