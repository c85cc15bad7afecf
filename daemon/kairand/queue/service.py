"""The queue's operations, each inside the caller's one write transaction: the rules of
kairand.queue.core applied to the rows of kairand.store.queue. A push a call makes due is
recorded with its retry key in the same transaction as the call (kairand.queue.pushes sends it).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

from kairand.config import QueueSection, QueueServiceSection
from kairand.queue import core
from kairand.queue.core import QueueRuleError
from kairand.store import queue as qstore
from kairand.store.database import Connection
from kairand.store.queue import Ticket


def _day(now: float) -> str:
    return core.day_of(now).isoformat()


def _service(cfg: QueueSection, code: str) -> QueueServiceSection:
    service = cfg.service(code)
    if service is None:
        raise QueueRuleError("service", "その窓口業務の順番待ちはありません。")
    return service


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Issued:
    ticket: Ticket
    token: str | None = None
    """The one-time QR token (kiosk tickets only); only its hash is stored."""
    ahead: int = 0
    minutes: int = 0


def issue(
    conn: Connection,
    cfg: QueueSection,
    service_code: str,
    channel: str,
    now: float,
    resident_id: int | None = None,
) -> Issued:
    """Issue the next ticket of SERVICE_CODE; QueueRuleError when closed or full."""
    service = _service(cfg, service_code)
    if not core.is_open(now, cfg.opens_at, cfg.closes_at):
        raise QueueRuleError(
            "closed",
            f"本日の受付時間（{cfg.opens_at}〜{cfg.closes_at}）外のため、番号札をお取りできません。",
        )
    day = _day(now)
    waiting = [t for t in qstore.in_state(conn, day, ("waiting",)) if t.service == service.code]
    if len(waiting) >= cfg.max_waiting:
        raise QueueRuleError("full", "ただいま大変混み合っており、番号札をお取りできません。")
    if resident_id is not None:
        mine = [
            t for t in qstore.of_resident(conn, resident_id, day) if t.state in core.OPEN_STATES
        ]
        same = [t for t in mine if t.service == service.code]
        if same:
            raise QueueRuleError(
                "already", f"すでに番号札 {same[0].label} をお持ちです。順番を確認できます。"
            )
    slot = qstore.booked_slot(conn, resident_id, service.code, now) if resident_id else None
    priority = core.is_priority(slot, now, cfg.booked_grace_minutes)
    ticket = qstore.insert_ticket(
        conn, day, service.code, service.prefix, channel, resident_id, priority, now
    )
    token = None
    if channel == "kiosk":
        token = core.new_token()
        qstore.add_token(conn, token_hash(token), ticket.id, core.day_end(now))
    ahead, minutes = position_of(conn, cfg, ticket)
    return Issued(ticket, token, ahead or 0, minutes)


def position_of(conn: Connection, cfg: QueueSection, ticket: Ticket) -> tuple[int | None, int]:
    """(tickets ahead, estimated minutes), or (None, 0) when the ticket is not waiting."""
    service = cfg.service(ticket.service)
    waiting = [
        core.Waiting(t.id, t.number, t.priority)
        for t in qstore.in_state(conn, ticket.day, ("waiting",))
        if t.service == ticket.service
    ]
    ahead = core.position(waiting, ticket.id)
    if ahead is None or service is None:
        return None, 0
    paused = qstore.paused_counters(conn)
    counters = len([c for c in service.counters if c not in paused]) or 1
    seconds = qstore.service_seconds(conn, ticket.day, ticket.service)
    return ahead, core.estimate_minutes(ahead, seconds, counters, service.default_service_minutes)


@dataclass(frozen=True)
class Linked:
    ticket: Ticket
    ahead: int | None
    minutes: int


def link_token(
    conn: Connection, cfg: QueueSection, token: str, resident_id: int, now: float
) -> Linked:
    """Tie the kiosk ticket of TOKEN to RESIDENT_ID. The token is single use, unknown tokens
    and expired ones are refused alike (no oracle for guessing)."""
    found = qstore.token(conn, token_hash(token))
    if found is None or found[1] <= now:
        raise QueueRuleError(
            "token", "この番号札のQRコードは使えません（有効期限は発券当日です）。"
        )
    ticket_id, _expires, used = found
    if used is not None or not qstore.use_token(conn, token_hash(token), now):
        raise QueueRuleError("token_used", "この番号札はすでにLINEと連携されています。")
    ticket = qstore.get(conn, ticket_id)
    assert ticket is not None
    if ticket.state not in core.OPEN_STATES:
        raise QueueRuleError("state", f"番号札 {ticket.label} の受付は終了しています。")
    qstore.update(conn, ticket.id, resident_id=resident_id)
    ticket = qstore.get(conn, ticket.id)
    assert ticket is not None
    ahead, minutes = position_of(conn, cfg, ticket)
    plan_near(conn, cfg, ticket.service, ticket.day, now)
    return Linked(ticket, ahead, minutes)


def _push(conn: Connection, ticket: Ticket, kind: str, now: float) -> None:
    if ticket.resident_id is not None:
        qstore.reserve_push(conn, ticket.id, kind, str(uuid.uuid4()), now)


def plan_near(conn: Connection, cfg: QueueSection, service: str, day: str, now: float) -> int:
    """Record the 'near' push for every LINE ticket with notify_when_ahead or fewer ahead."""
    if cfg.notify_when_ahead <= 0:
        return 0
    tickets = [t for t in qstore.in_state(conn, day, ("waiting",)) if t.service == service]
    ordered = core.order([core.Waiting(t.id, t.number, t.priority) for t in tickets])
    by_id = {t.id: t for t in tickets}
    planned = 0
    for ahead, w in enumerate(ordered):
        if ahead > cfg.notify_when_ahead:
            break
        ticket = by_id[w.id]
        if ticket.resident_id is None or ticket.issued_at == now:  # the reply told them
            continue
        if not qstore.has_push(conn, ticket.id, "near"):
            qstore.reserve_push(conn, ticket.id, "near", str(uuid.uuid4()), now)
            planned += 1
    return planned


def call_next(
    conn: Connection, cfg: QueueSection, service_code: str, counter: int, now: float
) -> Ticket | None:
    """Call the next ticket of SERVICE_CODE to COUNTER; None when nobody is waiting."""
    service = _service(cfg, service_code)
    if counter not in service.counters:
        raise QueueRuleError("counter", f"{counter}番窓口は{service.name}の窓口ではありません。")
    if counter in qstore.paused_counters(conn):
        raise QueueRuleError(
            "paused", f"{counter}番窓口は休止中です。再開してから呼び出してください。"
        )
    day = _day(now)
    waiting = [t for t in qstore.in_state(conn, day, ("waiting",)) if t.service == service.code]
    chosen = core.pick_next([core.Waiting(t.id, t.number, t.priority) for t in waiting])
    if chosen is None:
        return None
    qstore.update(conn, chosen.id, state="called", counter=counter, called_at=now)
    ticket = qstore.get(conn, chosen.id)
    assert ticket is not None
    _push(conn, ticket, "call1", now)
    plan_near(conn, cfg, service.code, day, now)
    return ticket


@dataclass(frozen=True)
class Acted:
    ticket: Ticket
    new_ticket: Ticket | None = None
    extra: dict[str, object] = field(default_factory=dict)


def act(
    conn: Connection,
    cfg: QueueSection,
    ticket_id: int,
    action: str,
    now: float,
    to_service: str | None = None,
    closed_by: str = "staff",
) -> Acted:
    """Apply a desk action (recall, serve, done, absent, transfer, cancel) to a ticket."""
    ticket = qstore.get(conn, ticket_id)
    if ticket is None:
        raise QueueRuleError("not_found", "その番号札はありません。")
    if action == "absent" and ticket.state == "called" and ticket.recalls < cfg.recall_limit:
        raise QueueRuleError(
            "recall_first",
            f"不在にする前に再呼出をしてください（{cfg.recall_limit}回まで、現在{ticket.recalls}回）。",
        )
    state = core.transition(
        ticket.state, action, recalls=ticket.recalls, recall_limit=cfg.recall_limit
    )
    new_ticket = None
    if action == "recall":
        qstore.update(conn, ticket.id, recalls=ticket.recalls + 1, called_at=now)
        after = qstore.get(conn, ticket.id)
        assert after is not None
        _push(conn, after, f"call{after.recalls + 1}", now)
    elif action == "serve":
        qstore.update(conn, ticket.id, state=state, serving_at=now)
    elif action == "transfer":
        target = _service(cfg, to_service or "")
        if target.code == ticket.service:
            raise QueueRuleError("transfer", "同じ窓口業務には転送できません。")
        # The resident keeps their turn: the new ticket goes first in the target queue.
        new_ticket = qstore.insert_ticket(
            conn,
            ticket.day,
            target.code,
            target.prefix,
            ticket.channel,
            ticket.resident_id,
            True,
            now,
        )
        qstore.update(
            conn,
            ticket.id,
            state=state,
            finished_at=now,
            transferred_to=new_ticket.id,
            closed_by=closed_by,
        )
        plan_near(conn, cfg, target.code, ticket.day, now)
    else:
        qstore.update(conn, ticket.id, state=state, finished_at=now, closed_by=closed_by)
    plan_near(conn, cfg, ticket.service, ticket.day, now)
    after = qstore.get(conn, ticket.id)
    assert after is not None
    return Acted(after, new_ticket)


def resident_cancel(
    conn: Connection, cfg: QueueSection, resident_id: int, now: float
) -> list[Ticket]:
    """Cancel the resident's waiting tickets of today (from the chat)."""
    cancelled = []
    for ticket in qstore.of_resident(conn, resident_id, _day(now)):
        if ticket.state in ("waiting", "called"):
            cancelled.append(act(conn, cfg, ticket.id, "cancel", now, closed_by="resident").ticket)
    return cancelled


def close_day(conn: Connection, cfg: QueueSection, now: float) -> int:
    """Close every open ticket of an earlier day, and today's once the closing time passed."""
    day = core.day_of(now)
    tickets = qstore.open_before(conn, day.isoformat())
    if now >= core.clock_at(day, cfg.closes_at):
        tickets += qstore.in_state(conn, day.isoformat(), tuple(core.OPEN_STATES))
    for ticket in tickets:
        state = core.transition(ticket.state, "close")
        qstore.update(conn, ticket.id, state=state, finished_at=now, closed_by="close")
    qstore.forget_expired_tokens(conn, now)
    return len(tickets)


def set_paused(
    conn: Connection, cfg: QueueSection, counter: int, paused: bool, actor: str, now: float
) -> None:
    if not any(counter in s.counters for s in cfg.services):
        raise QueueRuleError("counter", f"{counter}番窓口は設定にありません。")
    qstore.set_paused(conn, counter, paused, actor, now)


# -- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceView:
    code: str
    name: str
    prefix: str
    counters: tuple[int, ...]
    waiting: list[Ticket]
    calling: list[Ticket]
    serving: list[Ticket]
    issued: int
    done: int
    absent: int
    minutes_per_ticket: float


@dataclass(frozen=True)
class QueueView:
    day: str
    open: bool
    services: list[ServiceView]
    paused: set[int]


def view(conn: Connection, cfg: QueueSection, now: float) -> QueueView:
    day = _day(now)
    tickets = qstore.of_day(conn, day)
    services = []
    for service in cfg.services:
        mine = [t for t in tickets if t.service == service.code]
        waiting = [t for t in mine if t.state == "waiting"]
        by_id = {t.id: t for t in waiting}
        ordered = core.order([core.Waiting(t.id, t.number, t.priority) for t in waiting])
        seconds = qstore.service_seconds(conn, day, service.code)
        per = (
            sorted(seconds)[len(seconds) // 2] / 60 if seconds else service.default_service_minutes
        )
        services.append(
            ServiceView(
                service.code,
                service.name,
                service.prefix,
                service.counters,
                [by_id[w.id] for w in ordered],
                sorted(
                    (t for t in mine if t.state == "called"),
                    key=lambda t: -(t.called_at or 0),
                ),
                [t for t in mine if t.state == "serving"],
                len([t for t in mine if t.state != "transferred"]),
                len([t for t in mine if t.state == "done"]),
                len([t for t in mine if t.state == "absent"]),
                round(per, 1),
            )
        )
    return QueueView(
        day, core.is_open(now, cfg.opens_at, cfg.closes_at), services, qstore.paused_counters(conn)
    )
