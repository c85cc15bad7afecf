"""The annual re-registration notice: one polite push per resident and cycle, never after the
boundary. The retry key is stored before the push, so a retry after a crash reuses it and LINE
delivers at most once; a 409 for that key with x-line-accepted-request-id means LINE already
accepted it.

What LINE's answer means is kairand.line.errors' verdict, as for deliveries; what a notice
does with it differs in two places, both said below (NOTICE_STATE and _push)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from linebot.v3.messaging import ApiException, PushMessageRequest, TextMessage

from kairand.audit.chain import AuditEntry
from kairand.line.client import LineApi
from kairand.line.errors import LINE_ERRORS, classify, retry_key_held
from kairand.logs import get_logger
from kairand.retention.rules import Notice
from kairand.store import audit, settings
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)
MAX_ATTEMPTS = 5
CONCURRENCY = 8  # pushes in flight; far below LINE's 2,000 requests/s for push

NOTICE_STATE = {
    "sent": "sent",
    "retry": "retry",
    # Deliberately unlike the delivery sender, which pauses its whole queue on a 429 (backs off
    # on the rate limit, waits for next month on the quota): a notice is one push to one
    # resident, so it just stays pending for the next run, at most MAX_ATTEMPTS times.
    "rate": "retry",
    "quota": "retry",
    "failed": "failed",
}
"""kairand.line.errors.Verdict.kind -> the notice's state: sent | retry | failed."""


@dataclass(frozen=True)
class Pending:
    resident_id: int
    cycle: str
    retry_key: str
    text: str


def _reserve(conn: Connection, notices: Sequence[Notice], now: int) -> list[Pending]:
    reserved = []
    for notice in notices:
        key = str(uuid.uuid4())
        if retention_store.reserve_notice(conn, notice.resident_id, notice.cycle, key, now):
            reserved.append(Pending(notice.resident_id, notice.cycle, key, notice.text))
    return reserved


def _finish(conn: Connection, results: Sequence[tuple[Pending, str]], now: int) -> None:
    states: Counter[str] = Counter()
    for pending, state in results:
        if state == "retry":
            attempts = retention_store.count_attempt(conn, pending.resident_id, pending.cycle)
            if attempts >= MAX_ATTEMPTS:
                retention_store.mark_notice(conn, pending.resident_id, pending.cycle, "failed", now)
                state = "failed"
        else:
            retention_store.mark_notice(conn, pending.resident_id, pending.cycle, state, now)
        states[state] += 1
    if states:
        audit.append(
            conn,
            AuditEntry(
                at_ms=now * 1000,
                actor="system:retention",
                action="retention.notice",
                outcome="ok" if not states["failed"] else "failed",
                detail=dict(states),
            ),
        )
    if states["sent"]:
        settings.put(conn, "line.last_ok_at", now)


async def _push(line: LineApi, to: str, pending: Pending) -> str:
    """'sent', 'retry' (try again with the same key) or 'failed' (LINE refused it)."""
    request = PushMessageRequest(to=to, messages=[TextMessage(text=pending.text)])
    try:
        await line.messaging.push_message(
            request, x_line_retry_key=pending.retry_key, _request_timeout=line.timeout
        )
    except LINE_ERRORS as exc:
        # Only LINE's errors are interpreted (deliberately not safe_classify(), unlike the
        # sender): anything else propagates, and the notice stays reserved with its retry key
        # for the next run.
        # Deliberately unlike the sender, any 409 for the notice's retry key counts as sent,
        # also one without x-line-accepted-request-id (LINE still processing the key): the
        # sender retries within seconds, but a notice's next attempt is the next daily run,
        # when LINE (which remembers a key 24 hours) may have forgotten it and would send a
        # second notice.
        state = "sent" if retry_key_held(exc) else NOTICE_STATE[classify(exc).kind]
        if not isinstance(exc, ApiException):
            log.warning("retention.notice_unreachable", error=type(exc).__name__)
        elif state == "failed":
            log.warning("retention.notice_refused", status=exc.status)
        return state
    return "sent"


async def send_notices(
    store: Store,
    line: LineApi,
    notices: Sequence[Notice],
    live_cycles: dict[str, str],
    now: int | None = None,
    *,
    retry_pending: bool = True,
    program: bool = False,
) -> Counter[str]:
    """Reserve and push NOTICES, and (if RETRY_PENDING) retry earlier pending ones whose
    cycle is still live (LIVE_CYCLES: cycle -> text). Returns counts by outcome. A PROGRAM's
    notices also reach members who stopped the city information (retention_store.
    member_target); the city's own notices do not.

    A run that sends its notices page by page retries the pending ones in one call only, so
    each pending notice gets one attempt per run."""
    at = int(now if now is not None else time.time())
    reserved = await store.write(_reserve, notices, at) if notices else []
    just_reserved = {(p.resident_id, p.cycle) for p in reserved}
    retries = (
        [
            Pending(resident, cycle, key, live_cycles[cycle])
            for resident, cycle, key in await store.read(
                retention_store.pending_notices, list(live_cycles)
            )
            if (resident, cycle) not in just_reserved
        ]
        if retry_pending
        else []
    )
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(pending: Pending) -> tuple[Pending, str]:
        async with gate:
            target = retention_store.member_target if program else retention_store.notice_target
            to = await store.read(target, pending.resident_id)
            if to is None:  # purged (or, for the city, stopped) meanwhile: send nothing
                return pending, "failed"
            return pending, await _push(line, to, pending)

    results = list(await asyncio.gather(*(one(p) for p in [*retries, *reserved])))
    if results:
        await store.write(_finish, results, at)
    outcome: Counter[str] = Counter(state for _, state in results)
    if results:
        log.info("retention.notices", **dict(outcome))
    return outcome
