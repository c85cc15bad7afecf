"""Pushes about bookings: reminders N days before and on the morning of the day (W1), the
notice that staff cancelled or changed a booking, and the booking confirmation when its reply
could not be made. Each push is first recorded with a retry key in the same
transaction that decides it is due; the push reuses that key, so a daemon killed mid-way and
restarted never sends one twice (LINE answers 409 for an accepted key: counted as sent)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from linebot.v3.messaging import ApiException, PushMessageRequest, TextMessage

from kairand.audit.chain import AuditEntry
from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.reservations import calendar, dialogue
from kairand.reservations import service as svc
from kairand.reservations.model import Service
from kairand.runtime import LINE, STOPPING, STORE, TASKS
from kairand.store import audit
from kairand.store import reservations as rstore
from kairand.store.database import Connection, Store

log = get_logger(__name__)
MAX_ATTEMPTS = 5
CONCURRENCY = 8
POLL_SECONDS = 60.0
LOOKAHEAD_DAYS = 31


def plan_reminders(conn: Connection, now: int) -> int:
    """Record every reminder now due (not yet recorded) with a fresh retry key; the count.

    A reminder is due once its time has come and the slot has not started. A booking made
    after a reminder's time does not get that reminder (they just booked)."""
    _version, catalogue = svc.load_catalogue(conn)
    horizon = now + (LOOKAHEAD_DAYS + 1) * 86400
    planned = 0
    for b in rstore.active_starting_between(conn, now, horizon):
        service = catalogue.service(b.service)
        start = calendar.parse_key(b.slot)
        if service is None or start is None:
            continue
        for kind, when in calendar.reminder_times(service, start):
            due = int(when.timestamp())
            fresh = due <= now and b.created_at <= due
            if fresh and rstore.reserve_notice(conn, b.id, kind, str(uuid.uuid4()), now):
                planned += 1
    return planned


def staff_cancel(conn: Connection, booking_id: int, actor: str, now: int) -> rstore.Booking | None:
    """Cancel a booking at the desk; a LINE booker gets a push (recorded here, sent by the
    worker). None when the booking was not active."""
    cancelled = rstore.cancel(conn, booking_id, "staff", now)
    if cancelled is None:
        return None
    if cancelled.channel == "line" and cancelled.resident_id is not None:
        rstore.reserve_notice(conn, cancelled.id, "staff_cancel", str(uuid.uuid4()), now)
    return cancelled


def confirm_later(conn: Connection, booking_id: int, kind: str, now: int) -> bool:
    """The reply confirming a booking (KIND confirm | confirm_change) could not be made (its
    token expired, LINE refused it): record the confirmation as a notice with a fresh retry key,
    pushed by the worker. False when it was recorded before."""
    return rstore.reserve_notice(conn, booking_id, kind, str(uuid.uuid4()), now)


CONFIRMATIONS = ("confirm", "confirm_change")


REMINDER_BEFORE = (
    "【予約のお知らせ】\n{when}、ご予約の日です。\n"
    "予約番号：{number}\n手続き：{service}\n日時：{slot}\n場所：{counter}"
)
REMINDER_DAY = (
    "【予約のお知らせ】\n本日はご予約の日です。お気をつけてお越しください。\n"
    "予約番号：{number}\n手続き：{service}\n日時：{slot}\n場所：{counter}"
)
STAFF_CHANGED = (
    "【予約変更のお知らせ】\n"
    "ご予約の日時を、窓口で次のとおり変更しました。\n"
    "予約番号：{number}\n手続き：{service}\n日時：{slot}\n場所：{counter}\n"
    "ご都合が悪い場合は、メニューの「予約」から変更・取消ができます。"
)
STAFF_CANCELLED = (
    "【予約取消のお知らせ】\n"
    "誠に申し訳ありませんが、次のご予約は市の都合により取り消しとなりました。\n"
    "予約番号：{number}\n手続き：{service}\n日時：{slot}\n"
    "お手数ですが、メニューの「予約」から別の日時でご予約ください。"
)


def notice_text(kind: str, number: str, service: Service | None, slot: str, now: float) -> str:
    """The push for a reminder (dN / day) or a staff cancellation (Japanese, no personal data
    beyond the booking itself: the resident's own number and time)."""
    name = service.name if service else ""
    counter = service.counter if service else ""
    start = calendar.parse_key(slot)
    shown = calendar.format_slot(start) if start else slot
    if kind in CONFIRMATIONS:  # the same text as the reply the resident did not get
        done = dialogue.Done(number, service.code if service else "", slot, kind != "confirm")
        return str(dialogue.booked_message(done, service)["text"])
    if kind == "staff_cancel":
        return STAFF_CANCELLED.format(number=number, service=name, slot=shown)
    if kind == "staff_change":
        return STAFF_CHANGED.format(number=number, service=name, slot=shown, counter=counter)
    if kind == "day":
        return REMINDER_DAY.format(number=number, service=name, slot=shown, counter=counter)
    days = (start.date() - calendar.today(now)).days if start else 0
    when = "明日" if days == 1 else f"{days}日後" if days > 1 else "本日"
    return REMINDER_BEFORE.format(
        when=when, number=number, service=name, slot=shown, counter=counter
    )


@dataclass(frozen=True)
class Due:
    booking_id: int
    kind: str
    retry_key: str
    to: str | None
    text: str


def _load_due(conn: Connection, now: int) -> list[Due]:
    _version, catalogue = svc.load_catalogue(conn)
    out: list[Due] = []
    for booking_id, kind, key, _attempts in rstore.pending_notices(conn):
        b = rstore.get(conn, booking_id)
        if b is None:
            continue
        to = rstore.line_user_of(conn, b.resident_id) if b.resident_id is not None else None
        reminder = kind not in ("staff_cancel", "staff_change")
        if (reminder and b.state != "active") or (b.slot_at <= now and reminder):
            to = None  # cancelled meanwhile, or the slot started: nothing to remind
        text = notice_text(kind, b.number, catalogue.service(b.service), b.slot, now)
        out.append(Due(booking_id, kind, key, to, text))
    return out


def _finish(conn: Connection, results: list[tuple[Due, str]], now: int) -> None:
    states: Counter[str] = Counter()
    for due, state in results:
        if state == "retry":
            attempts = conn.execute(
                "SELECT attempts FROM reservation_notices WHERE booking_id = ? AND kind = ?",
                (due.booking_id, due.kind),
            ).fetchone()
            if attempts is not None and int(attempts[0]) + 1 >= MAX_ATTEMPTS:
                state = "failed"
            else:
                rstore.mark_notice(conn, due.booking_id, due.kind, "pending", now)
                states["retry"] += 1
                continue
        rstore.mark_notice(conn, due.booking_id, due.kind, state, now)
        states[state] += 1
    if states:
        audit.append(
            conn,
            AuditEntry(
                at_ms=now * 1000,
                actor="system:reservations",
                action="reservation.notice",
                outcome="ok" if not states["failed"] else "failed",
                detail=dict(states),
            ),
        )


async def _push(line: LineApi, due: Due) -> str:
    assert due.to is not None
    request = PushMessageRequest(to=due.to, messages=[TextMessage(text=due.text)])
    try:
        await line.messaging.push_message(
            request, x_line_retry_key=due.retry_key, _request_timeout=line.timeout
        )
    except ApiException as exc:
        if exc.status == 409:  # LINE already accepted this retry key: delivered
            return "sent"
        if exc.status == 429 or (exc.status or 0) >= 500:
            return "retry"
        log.warning("reservations.notice_refused", status=exc.status)
        return "failed"
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("reservations.notice_unreachable", error=type(exc).__name__)
        return "retry"
    return "sent"


async def run_once(store: Store, line: LineApi | None, now: int) -> Counter[str]:
    """Plan due reminders, then push every pending notice once. Without LINE nothing is sent
    (planned notices stay pending for when it is back)."""
    await store.write(plan_reminders, now)
    if line is None:
        return Counter()
    pending = await store.read(_load_due, now)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(due: Due) -> tuple[Due, str]:
        if due.to is None:
            return due, "skipped"
        async with gate:
            return due, await _push(line, due)

    results = list(await asyncio.gather(*(one(d) for d in pending)))
    if results:
        await store.write(_finish, results, now)
        log.info("reservations.notices", **Counter(s for _, s in results))
    return Counter(s for _, s in results)


WAKE = web.AppKey("reservation_notices_wake", asyncio.Event)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("reservation_clock")


def wake(app: web.Application) -> None:
    """Ask the worker to run now (after a staff cancellation)."""
    event = app.get(WAKE)
    if event is not None:
        event.set()


async def _loop(app: web.Application) -> None:
    store, stopping, event = app[STORE], app[STOPPING], app[WAKE]
    clock = app.get(CLOCK, time.time)
    while not stopping.is_set():
        event.clear()
        try:
            await run_once(store, app.get(LINE), int(clock()))
        except Exception as exc:  # keep the worker alive; the next round retries
            log.error("reservations.notices_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), POLL_SECONDS)


async def notices_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the reminder worker runs while the daemon runs."""
    app[WAKE] = asyncio.Event()
    app[TASKS].worker("reservation-notices", lambda: _loop(app))
    yield
