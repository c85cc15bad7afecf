"""The same-day queue: the kiosk issues tickets, the desk (窓口担当) calls them, the
board shows them. Rules are kairand.queue.service's; a QueueRuleError becomes a 409 problem
with its Japanese message."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from aiohttp import web

from kairand.api import schema
from kairand.api.http import (
    STATE,
    config_of,
    json_body,
    note,
    ok,
    staff_of,
    store_of,
)
from kairand.api.problems import ApiProblem
from kairand.queue import core, service, stats
from kairand.queue.core import QueueRuleError
from kairand.queue.signals import SIGNALS
from kairand.store import queue as qstore
from kairand.store.queue import Ticket

KEEPALIVE_SECONDS = 15.0


def _now(request: web.Request) -> float:
    return request.app[SIGNALS].clock()


def _problem(exc: QueueRuleError) -> ApiProblem:
    kind = "not-found" if exc.code == "not_found" else "conflict"
    return ApiProblem(kind, exc.message, code=exc.code)


def _ticket(t: Ticket) -> schema.QueueTicket:
    return schema.QueueTicket(
        id=t.id,
        label=t.label,
        service=t.service,
        state=t.state,
        channel=t.channel,
        line_linked=t.resident_id is not None,
        priority=t.priority,
        counter=t.counter,
        recalls=t.recalls,
        issued_at_unix=t.issued_at,
        called_at_unix=t.called_at,
    )


def board_of(view: service.QueueView, opens_at: str, closes_at: str) -> schema.QueueBoard:
    calling = sorted(
        (t for s in view.services for t in s.calling), key=lambda t: -(t.called_at or 0)
    )
    return schema.QueueBoard(
        day=view.day,
        open=view.open,
        opens_at=opens_at,
        closes_at=closes_at,
        calling=[
            schema.QueueCalled(label=t.label, counter=t.counter or 0, service=t.service)
            for t in calling
        ],
        services=[
            schema.QueueBoardService(
                code=s.code,
                name=s.name,
                prefix=s.prefix,
                waiting=len(s.waiting),
                next=[t.label for t in s.waiting[:5]],
                minutes_per_ticket=s.minutes_per_ticket,
            )
            for s in view.services
        ],
    )


async def _board(request: web.Request) -> schema.QueueBoard:
    cfg = config_of(request).queue
    view = await store_of(request).read(service.view, cfg, _now(request))
    return board_of(view, cfg.opens_at, cfg.closes_at)


async def board(request: web.Request) -> web.Response:
    return ok(await _board(request))


async def board_events(request: web.Request) -> web.StreamResponse:
    """`event: board` with the whole board whenever it changed (at once after a desk action;
    tickets from the chat within api.event_interval_seconds)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    signals = request.app[SIGNALS]
    stopping = request.app[STATE].stopping
    interval = config_of(request).api.event_interval_seconds
    last, last_write, version = "", time.monotonic(), -1
    try:
        while not stopping.is_set():
            data = (await _board(request)).model_dump_json()
            if data != last:
                await response.write(f"event: board\ndata: {data}\n\n".encode())
                last, last_write = data, time.monotonic()
            elif time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            waiter = asyncio.ensure_future(signals.wait_changed(version, interval))
            stop = asyncio.ensure_future(stopping.wait())
            done, pending = await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if waiter in done:
                version = waiter.result()
    except ConnectionResetError:  # the board went away
        pass
    return response


async def issue(request: web.Request) -> web.Response:
    body = await json_body(request, schema.QueueIssue)
    cfg = config_of(request).queue
    # The kiosk role issues paper tickets (with a QR token); the desk issues for a walk-in.
    channel = "kiosk" if "kiosk" in staff_of(request).roles else "desk"
    try:
        issued = await store_of(request).write(
            service.issue, cfg, body.service, channel, _now(request)
        )
    except QueueRuleError as exc:
        raise _problem(exc) from None
    request.app[SIGNALS].changed()
    note(request, ticket=issued.ticket.label)
    svc = cfg.service(issued.ticket.service)
    qr = (
        core.qr_link(cfg.line_basic_id, issued.token)
        if issued.token is not None and cfg.line_basic_id
        else None
    )
    return ok(
        schema.QueueIssued(
            id=issued.ticket.id,
            label=issued.ticket.label,
            service=issued.ticket.service,
            service_name=svc.name if svc else issued.ticket.service,
            issued_at_unix=issued.ticket.issued_at,
            ahead=issued.ahead,
            minutes=issued.minutes,
            qr_url=qr,
        ),
        status=201,
    )


async def desk(request: web.Request) -> web.Response:
    cfg = config_of(request).queue
    view = await store_of(request).read(service.view, cfg, _now(request))
    return ok(
        schema.QueueDesk(
            day=view.day,
            open=view.open,
            recall_limit=cfg.recall_limit,
            paused_counters=sorted(view.paused),
            services=[
                schema.QueueDeskService(
                    code=s.code,
                    name=s.name,
                    prefix=s.prefix,
                    counters=list(s.counters),
                    waiting=[_ticket(t) for t in s.waiting],
                    calling=[_ticket(t) for t in s.calling],
                    serving=[_ticket(t) for t in s.serving],
                    issued=s.issued,
                    done=s.done,
                    absent=s.absent,
                    minutes_per_ticket=s.minutes_per_ticket,
                )
                for s in view.services
            ],
        )
    )


async def call(request: web.Request) -> web.Response:
    body = await json_body(request, schema.QueueCall)
    cfg = config_of(request).queue
    try:
        ticket = await store_of(request).write(
            service.call_next, cfg, body.service, body.counter, _now(request)
        )
    except QueueRuleError as exc:
        raise _problem(exc) from None
    if ticket is None:
        raise ApiProblem("conflict", "お待ちの方はいません。", code="empty")
    request.app[SIGNALS].changed()
    note(request, ticket=ticket.label, counter=body.counter)
    return ok(_ticket(ticket))


def _ticket_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise ApiProblem("not-found", "その番号札はありません。") from None


async def action(request: web.Request) -> web.Response:
    body = await json_body(request, schema.QueueAction)
    cfg = config_of(request).queue
    ticket_id = _ticket_id(request)
    if body.action == "transfer" and body.service is None:
        raise ApiProblem("bad-request", "転送先の窓口業務を選んでください。", field="service")
    try:
        acted = await store_of(request).write(
            service.act, cfg, ticket_id, body.action, _now(request), body.service
        )
    except QueueRuleError as exc:
        raise _problem(exc) from None
    request.app[SIGNALS].changed()
    note(request, ticket=acted.ticket.label, action=body.action)
    return ok(_ticket(acted.new_ticket or acted.ticket))


async def pause(request: web.Request) -> web.Response:
    body = await json_body(request, schema.QueuePause)
    cfg = config_of(request).queue
    counter = _ticket_id(request)
    try:
        await store_of(request).write(
            service.set_paused, cfg, counter, body.paused, staff_of(request).username, _now(request)
        )
    except QueueRuleError as exc:
        raise _problem(exc) from None
    request.app[SIGNALS].changed()
    note(request, counter=counter, paused=body.paused)
    return await desk(request)


def _date(value: str | None, default: dt.date, name: str) -> dt.date:
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ApiProblem(
            "bad-request", "日付は YYYY-MM-DD で指定してください。", field=name
        ) from None


async def statistics(request: web.Request) -> web.Response:
    today = core.day_of(_now(request))
    first = _date(request.query.get("from"), today - dt.timedelta(days=30), "from")
    last = _date(request.query.get("to"), today, "to")
    if last < first or (last - first).days > 366:
        raise ApiProblem(
            "bad-request", "期間は1年以内で、開始日を終了日より前にしてください。", field="from"
        )
    config = config_of(request)
    k = config.privacy.small_cell_threshold
    tickets = await store_of(request).read(qstore.range_rows, first.isoformat(), last.isoformat())
    rows = stats.aggregate(
        (
            stats.TicketFacts(
                t.service, t.state, t.issued_at, t.called_at, t.serving_at, t.finished_at
            )
            for t in tickets
        ),
        k,
    )
    if request.query.get("format") == "csv":
        names = {s.code: s.name for s in config.queue.services}
        return web.Response(
            body=stats.to_csv(rows, k, names),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="queue-statistics.csv"'},
        )
    out: dict[str, Any] = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "small_cell_threshold": k,
        "rows": [schema.QueueStatRow(**r.__dict__) for r in rows],
    }
    return ok(schema.QueueStatistics(**out))
