"""The inbox worker: turns stored webhook events into conversation effects and replies.

Crash safety: a batch of pending events is processed in one write transaction, each event in
its own savepoint, and each event is marked done (body and sender forgotten) in the same
transaction as its store effects. A daemon killed before the commit redoes the whole batch
(nothing was applied); killed after it, it finds nothing pending. Replies go out only after the
commit, through the free reply API; a reply that fails is logged and dropped (its token lives
about a minute and LINE refuses retries), never retried in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from linebot.v3.messaging import ApiException, ReplyMessageRequest

from kairand.conversation import machine
from kairand.conversation.events import parse_event
from kairand.keys import secrets
from kairand.line.client import LineApi
from kairand.line.webhook import wake_event
from kairand.logs import get_logger
from kairand.retention.purge import purge_resident
from kairand.runtime import CONFIG, LINE, STORE, TASKS
from kairand.store import inbox, metrics, residents, settings, test_recipients
from kairand.store import survey as survey_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)

BATCH_SIZE = 200
POLL_SECONDS = 1.0
REPLY_CONCURRENCY = 16


@dataclass(frozen=True)
class PurgeKeys:
    hmac_key: bytes
    signing_key: Ed25519PrivateKey


@dataclass(frozen=True)
class PendingReply:
    reply_token: str
    messages: tuple[dict[str, Any], ...]


@dataclass
class BatchResult:
    processed: int = 0
    failed: int = 0
    replies: list[PendingReply] = field(default_factory=list)
    want_profile: list[str] = field(default_factory=list)
    """LINE user ids whose display name to fetch (only with privacy.store_display_name)."""


def _apply(
    conn: Connection,
    row: inbox.PendingEvent,
    definition: Any,
    version: int,
    now: int,
    keys: PurgeKeys,
    store_display_name: bool,
    result: BatchResult,
) -> str:
    """Apply one event's effects; returns the inbox state to record (done | ignored)."""
    try:
        raw = json.loads(row.body)
    except ValueError:
        return "ignored"
    event = parse_event(raw if isinstance(raw, dict) else {})
    user_id = event.user_id
    if user_id is None:
        return "ignored"
    loaded = residents.load(conn, user_id)
    resident_id, state = loaded if loaded else (None, None)
    outcome = machine.handle(event, state, definition, version)
    if not outcome.handled:
        return "ignored"
    replies = list(outcome.replies)
    conversation_saved = False
    for op in outcome.ops:
        if isinstance(op, machine.StartResident):
            resident_id = residents.start(conn, user_id, now)
            if store_display_name:
                result.want_profile.append(user_id)
        elif isinstance(op, machine.CountMetric):
            metrics.increment(conn, op.metric, now)
        elif isinstance(op, machine.Purge):
            purge_resident(
                conn,
                user_id,
                op.reason,
                now,
                keys.hmac_key,
                keys.signing_key,
                actor="kairand.inbox",
                keep_pending_after_ms=event.timestamp,
            )
            resident_id = None
        elif isinstance(op, machine.ClaimTestCode):
            staff = test_recipients.claim(conn, op.code, user_id, now)
            replies = list(machine.test_code_reply(staff))
        else:
            if resident_id is None:
                raise RuntimeError(f"{type(op).__name__} for a resident without a record")
            if isinstance(op, machine.SetConsent):
                residents.set_consent(conn, resident_id, op.version, now)
            elif isinstance(op, machine.SetConversation):
                residents.set_conversation(conn, resident_id, op.state, version, now)
                conversation_saved = True
            elif isinstance(op, machine.SetAnswer):
                residents.replace_answer(conn, resident_id, op.question, op.values, now)
            elif isinstance(op, machine.MarkRegistered):
                residents.mark_registered(conn, resident_id, now)
            elif isinstance(op, machine.SetDeliveriesStopped):
                residents.set_deliveries_stopped(conn, resident_id, op.stopped)
    if resident_id is not None and not conversation_saved:
        residents.touch(conn, resident_id, now)
    # Standby mode: another channel owns the chat; Kairan records but says nothing.
    if replies and event.reply_token and not event.standby:
        result.replies.append(PendingReply(event.reply_token, tuple(replies[:5])))
    return "done"


def process_batch(
    conn: Connection, limit: int, now: float, keys: PurgeKeys, store_display_name: bool
) -> BatchResult:
    """Process up to LIMIT pending events inside the caller's write transaction."""
    result = BatchResult()
    rows = inbox.pending(conn, limit)
    if not rows:
        return result
    current = survey_store.current(conn)
    if current is None:
        raise RuntimeError("no survey definition in the store")
    version, definition = current
    at = int(now)
    for row in rows:
        try:
            with inbox.event_savepoint(conn):
                state = _apply(conn, row, definition, version, at, keys, store_display_name, result)
                inbox.finish(conn, row.id, state, at)
        except Exception as exc:
            # Logged without the event (it may hold a user id); the row is kept as 'failed'.
            log.error("inbox.event_failed", inbox_id=row.id, error=type(exc).__name__)
            inbox.finish(conn, row.id, "failed", at)
            result.failed += 1
        result.processed += 1
    return result


async def send_replies(line: LineApi, replies: list[PendingReply]) -> tuple[int, int]:
    """Send REPLIES concurrently; returns (sent, failed). Failures are logged, not retried."""
    semaphore = asyncio.Semaphore(REPLY_CONCURRENCY)
    sent = failed = 0

    async def one(reply: PendingReply) -> None:
        nonlocal sent, failed
        request = ReplyMessageRequest.from_dict(
            {"replyToken": reply.reply_token, "messages": list(reply.messages)}
        )
        async with semaphore:
            try:
                await line.messaging.reply_message(request, _request_timeout=line.timeout)
                sent += 1
            except ApiException as exc:
                failed += 1
                log.warning("inbox.reply_failed", status=exc.status)
            except (ClientError, TimeoutError, OSError) as exc:
                failed += 1
                log.warning("inbox.reply_failed", error=type(exc).__name__)
            except Exception as exc:  # e.g. an unparseable answer: never stop the worker
                failed += 1
                log.warning("inbox.reply_failed", error=type(exc).__name__)

    await asyncio.gather(*(one(r) for r in replies))
    return sent, failed


def _record_line_status(conn: Connection, ok: bool, now: float, error: str) -> None:
    if ok:
        settings.put(conn, "line.last_ok_at", int(now))
    else:
        settings.put(conn, "line.last_error", {"at": int(now), "error": error})


async def _fetch_display_names(store: Store, line: LineApi, user_ids: list[str]) -> None:
    """W6: only the display name is kept; pictureUrl and statusMessage are never stored."""
    for user_id in user_ids:
        try:
            profile = await line.messaging.get_profile(user_id, _request_timeout=line.timeout)
        except (ApiException, ClientError, TimeoutError, OSError) as exc:
            log.warning("inbox.profile_failed", error=type(exc).__name__)
            continue
        await store.write(residents.set_display_name, user_id, profile.display_name)


class InboxWorker:
    def __init__(
        self,
        store: Store,
        line: LineApi | None,
        keys: PurgeKeys,
        wake: asyncio.Event,
        store_display_name: bool = False,
    ) -> None:
        self.store = store
        self.line = line
        self.keys = keys
        self.wake = wake
        self.store_display_name = store_display_name
        self.processed = 0

    async def run_once(self) -> BatchResult:
        result = await self.store.write(
            process_batch, BATCH_SIZE, time.time(), self.keys, self.store_display_name
        )
        self.processed += result.processed
        if result.processed:
            log.info("inbox.processed", events=result.processed, failed=result.failed)
        if self.line is not None:
            if result.replies:
                _sent, failed = await send_replies(self.line, result.replies)
                await self.store.write(
                    _record_line_status, failed == 0, time.time(), f"{failed} replies failed"
                )
            if result.want_profile:
                await _fetch_display_names(self.store, self.line, result.want_profile)
        return result

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                result = await self.run_once()
            except Exception:
                log.error("inbox.batch_failed", exc_info=True)
                await asyncio.sleep(POLL_SECONDS)
                continue
            if result.processed < BATCH_SIZE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)


def load_keys() -> PurgeKeys:
    return PurgeKeys(secrets.receipt_hmac_key(), secrets.signing_key())


async def inbox_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the inbox worker runs while the daemon runs."""
    config = app[CONFIG]
    keys = await asyncio.get_running_loop().run_in_executor(None, load_keys)
    worker = InboxWorker(
        app[STORE], app.get(LINE), keys, wake_event(app), config.privacy.store_display_name
    )
    app[INBOX_WORKER] = worker
    app[TASKS].worker("inbox-worker", worker.run)
    yield


INBOX_WORKER = web.AppKey("inbox_worker", InboxWorker)
