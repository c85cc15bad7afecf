"""The queue's pushes (W2): "your turn is near" and "A-012番の方、3番窓口へお越しください".

Each push was recorded with a fresh retry key in the transaction that made it due (a call, a
recall, a ticket moving up; kairand.queue.service). This worker sends the pending ones with that
key, so a daemon killed between the push and marking it sent pushes again with the same key and
LINE answers 409 (already accepted: counted as sent) — the resident never gets it twice. The
worker also closes the day at the configured time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from linebot.v3.messaging import ApiException, PushMessageRequest, TextMessage

from kairand.config import QueueSection
from kairand.logs import get_logger
from kairand.queue import core, service
from kairand.queue.signals import SIGNALS, QueueSignals
from kairand.runtime import CONFIG, LINE, STOPPING, STORE, TASKS
from kairand.store import queue as qstore
from kairand.store.database import Connection, Store

if TYPE_CHECKING:  # the type only: kairand.line imports the queue's chat shell
    from kairand.line.client import LineApi

log = get_logger(__name__)
MAX_ATTEMPTS = 5
CONCURRENCY = 8
POLL_SECONDS = 5.0
"""Pushes planned by the chat (a linked ticket moving up) wait at most this long; a desk
call wakes the worker at once."""
RETRY_SECONDS = 1.0


def _text(conn: Connection, cfg: QueueSection, push: qstore.PendingPush) -> str | None:
    """The push's text, or None when it no longer applies (cancelled, already served)."""
    if push.kind == "near":
        if push.state != "waiting":
            return None
        ticket = qstore.get(conn, push.ticket_id)
        if ticket is None:
            return None
        ahead, _minutes = service.position_of(conn, cfg, ticket)
        return core.near_text(push.label, ahead or 0)
    if push.state != "called" or push.counter is None:
        return None
    return core.call_text(push.label, push.counter)


def load_due(conn: Connection, cfg: QueueSection) -> list[tuple[qstore.PendingPush, str | None]]:
    return [
        (p, _text(conn, cfg, p) if p.line_user_id else None) for p in qstore.pending_pushes(conn)
    ]


def finish(conn: Connection, results: list[tuple[qstore.PendingPush, str]], now: float) -> None:
    for push, state in results:
        if state == "retry":
            state = "failed" if push.attempts + 1 >= MAX_ATTEMPTS else "pending"
        qstore.mark_push(conn, push.ticket_id, push.kind, state, now)


async def _send(line: LineApi, push: qstore.PendingPush, text: str) -> str:
    assert push.line_user_id is not None
    request = PushMessageRequest(to=push.line_user_id, messages=[TextMessage(text=text)])
    try:
        await line.messaging.push_message(
            request, x_line_retry_key=push.retry_key, _request_timeout=line.timeout
        )
    except ApiException as exc:
        if exc.status == 409:  # LINE already accepted this retry key: it was delivered
            return "sent"
        if exc.status == 429 or (exc.status or 0) >= 500:
            return "retry"
        log.warning("queue.push_refused", status=exc.status)
        return "failed"
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("queue.push_unreachable", error=type(exc).__name__)
        return "retry"
    return "sent"


async def run_once(store: Store, cfg: QueueSection, line: LineApi | None) -> Counter[str]:
    """Push every pending queue push once; without LINE they stay pending."""
    if line is None:
        return Counter()
    due = await store.read(load_due, cfg)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(push: qstore.PendingPush, text: str | None) -> tuple[qstore.PendingPush, str]:
        if text is None:
            return push, "skipped"
        async with gate:
            return push, await _send(line, push, text)

    results = list(await asyncio.gather(*(one(p, t) for p, t in due)))
    if results:
        await store.write(finish, results, time.time())
        counts = Counter(s for _, s in results)
        log.info("queue.pushes", **counts)
        return counts
    return Counter()


async def _loop(app: web.Application) -> None:
    store, stopping, cfg = app[STORE], app[STOPPING], app[CONFIG].queue
    event = app[SIGNALS].push
    clock = app[SIGNALS].clock
    while not stopping.is_set():
        event.clear()
        pause = POLL_SECONDS
        try:
            closed = await store.write(service.close_day, cfg, clock())
            if closed:
                log.info("queue.day_closed", tickets=closed)
            if (await run_once(store, cfg, app.get(LINE))).get("retry"):
                pause = RETRY_SECONDS
        except Exception as exc:  # keep the worker alive; the next round retries
            log.error("queue.pushes_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), pause)


async def queue_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the queue's push worker runs while the daemon runs (if a queue is
    configured)."""
    if SIGNALS not in app:  # a test or the demo may have set one with its own clock
        app[SIGNALS] = QueueSignals()
    if app[CONFIG].queue.services:
        app[TASKS].worker("queue-pushes", lambda: _loop(app))
    yield
