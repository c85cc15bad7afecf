"""The inbox worker: turns stored webhook events into conversation effects and replies.

Crash safety: a batch of pending events is processed in one write transaction, each event in
its own savepoint, and each event is marked done (body and sender forgotten) in the same
transaction as its store effects. A daemon killed before the commit redoes the whole batch
(nothing was applied); killed after it, it finds nothing pending. Replies go out only after the
commit, through the free reply API, by a `ReplySender` (kairand.line.replies) that the worker
does not wait for: replies go out concurrently across residents and in order for each one,
bounded by the reply token's lifetime; a reply that fails is counted and never retried (its
token lives about a minute and LINE refuses reuse), with a push only where the resident must
know the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from linebot.v3.messaging import ApiException

from kairand.config import QueueSection
from kairand.conversation import machine, texts
from kairand.conversation.events import parse_event
from kairand.conversation.texts import consultation_reply
from kairand.keys import secrets
from kairand.line import booking as booking_chat
from kairand.line.client import LineApi
from kairand.line.replies import (
    REPLY_CONCURRENCY,
    REPLY_TOKEN_LIFETIME_SECONDS,
    PendingReply,
    ReplySender,
    must_know,
    send_replies,
)
from kairand.line.webhook import INBOX_INLINE, USER_ID_RE, wake_event
from kairand.logs import get_logger
from kairand.programs import inbox as program_inbox
from kairand.queue import chat as queue_chat
from kairand.reservations import notices as reservation_notices
from kairand.retention.purge import purge_resident
from kairand.runtime import CONFIG, LINE, STORE, TASKS
from kairand.store import inbox, metrics, residents, settings, test_recipients
from kairand.store import survey as survey_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)

BATCH_SIZE = 200
PENDING_CHUNK = 16
"""Pending events are read this many at a time: a batch under a backlog commits after a few
events (the budget below, or a webhook's insert waiting), and reading 200 rows with their
bodies for each such batch cost a sixth of the writer thread in the booking rush."""
BATCH_BUDGET_SECONDS = 0.025
"""A batch commits once its events took this long, even with more pending: replies go out
only after the commit, so a long batch delays every reply in it (the booking rush measured
p95 in seconds behind 200-event batches). A short queue makes small batches (each event
replied right after its own commit); a long one makes batches of about this duration."""
RECORD_EVERY_SECONDS = 1.0
"""Reply outcomes (LINE health, counters) are written at most this often while busy."""
POLL_SECONDS = 1.0
__all__ = ["REPLY_CONCURRENCY", "PendingReply", "send_replies"]  # re-exported for callers


@dataclass(frozen=True)
class PurgeKeys:
    hmac_key: bytes
    signing_key: Ed25519PrivateKey


@dataclass
class BatchResult:
    processed: int = 0
    failed: int = 0
    replies: list[PendingReply] = field(default_factory=list)
    want_profile: list[str] = field(default_factory=list)
    """LINE user ids whose display name to fetch (only with privacy.store_display_name)."""
    more: bool = False
    """Events may still be pending (the batch stopped at its limit or its time budget)."""
    counted: list[str] = field(default_factory=list)
    """Daily metrics of the batch's processed events (one per event, e.g. "follow"), written
    once per metric at the end of the batch instead of once per event."""


def _apply(
    conn: Connection,
    row: inbox.PendingEvent,
    definition: Any,
    version: int,
    now: int,
    keys: PurgeKeys,
    store_display_name: bool,
    result: BatchResult,
    postback_max_age_ms: int | None = None,
    reply_lifetime: float = REPLY_TOKEN_LIFETIME_SECONDS,
    queue_cfg: QueueSection | None = None,
    consult_reply: str | None = None,
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
    if not USER_ID_RE.fullmatch(user_id):
        # Stored before the webhook refused such ids: never a resident (LINE would refuse
        # every multicast batch it is in). Counted, never logged.
        metrics.increment(conn, "inbox_invalid_user_id", now)
        return "ignored"
    # The same-day queue; in standby mode Kairan takes no ticket and says nothing.

    def reply_with(
        messages: Sequence[Any], essential: bool, confirmation: tuple[int, str] | None = None
    ) -> str:
        """Queue the reply of a dialogue that handled the event; ESSENTIAL outcomes (a ticket
        or booking taken, tied or cancelled) reach the resident by push if the reply is late
        (a booking's CONFIRMATION as a stored reservation notice)."""
        if messages and event.reply_token:
            reply = PendingReply(
                event.reply_token,
                tuple(messages),
                user_id=user_id,
                deadline=(row.received_at or now) + reply_lifetime,
                confirmation=confirmation,
            )
            result.replies.append(must_know(reply, essential))
        return "done"

    queued = None if event.standby else queue_chat.route(conn, queue_cfg, event, now)
    if queued is not None:
        return reply_with(queued, True)
    booked = booking_chat.route(conn, event, now)  # the booking dialogue, if it is one
    if booked is not None:
        return reply_with(booked.replies, booked.essential, booked.confirmation)
    loaded = residents.load(conn, user_id)
    resident_id, state = loaded if loaded else (None, None)
    # Programs have their own dialogue: their keyword and their own postbacks.
    program = program_inbox.apply_event(
        conn, event, user_id, resident_id, now, keys.hmac_key, keys.signing_key
    )
    if program is not None:
        if program.replies and event.reply_token and not event.standby:
            reply = PendingReply(
                event.reply_token,
                program.replies[:5],
                user_id=user_id,
                deadline=(row.received_at or now) + reply_lifetime,
            )
            result.replies.append(reply)
        return "done"
    outcome = machine.handle(
        event,
        state,
        definition,
        version,
        consult_reply=consult_reply if consult_reply is not None else texts.GUIDANCE,
        now_ms=now * 1000,
        max_postback_age_ms=postback_max_age_ms,
    )
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
            result.counted.append(op.metric)  # written by process_batch
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
        # Buttons just shown carry this survey version: postbacks of it are now expected.
        shown = version if replies and not event.standby else None
        residents.touch(conn, resident_id, now, shown)
    # Standby mode: another channel owns the chat; Kairan records but says nothing.
    if replies and event.reply_token and not event.standby:
        reply = PendingReply(
            event.reply_token,
            tuple(replies[:5]),
            user_id=user_id,
            deadline=(row.received_at or now) + reply_lifetime,
        )
        result.replies.append(must_know(reply, _essential(outcome.ops)))
    return "done"


def _essential(ops: tuple[machine.Operation, ...]) -> bool:
    """Outcomes a resident must learn about even when the reply cannot be made in time."""
    return any(
        isinstance(op, machine.SetDeliveriesStopped | machine.MarkRegistered)
        or (isinstance(op, machine.Purge) and op.reason == "request")
        for op in ops
    )


def process_batch(
    conn: Connection,
    limit: int,
    now: float,
    keys: PurgeKeys,
    store_display_name: bool,
    postback_max_age_seconds: int | None = None,
    reply_lifetime: float = REPLY_TOKEN_LIFETIME_SECONDS,
    queue_cfg: QueueSection | None = None,
    consult_reply: str | None = None,
    budget: float | None = None,
    yield_to: Callable[[], bool] | None = None,
) -> BatchResult:
    """Process up to LIMIT pending events inside the caller's write transaction, stopping early
    once BUDGET seconds (of processing) have passed or YIELD_TO() says an urgent write (a
    webhook's events waiting for their ack) is queued behind this one. Postbacks older than
    POSTBACK_MAX_AGE_SECONDS (by their event timestamp) are refused politely."""
    max_age_ms = None if postback_max_age_seconds is None else postback_max_age_seconds * 1000
    result = BatchResult()
    chunk = min(limit, PENDING_CHUNK)
    rows = inbox.pending(conn, chunk)
    if not rows:
        return result
    current = survey_store.current(conn)
    if current is None:
        raise RuntimeError("no survey definition in the store")
    version, definition = current
    at = int(now)
    stop = None if budget is None else time.monotonic() + budget
    stopped = False
    while rows:
        stopped = _process_rows(
            conn,
            rows,
            result,
            stop,
            yield_to,
            definition,
            version,
            at,
            keys,
            store_display_name,
            max_age_ms,
            reply_lifetime,
            queue_cfg,
            consult_reply,
        )
        if stopped or len(rows) < chunk or result.processed >= limit:
            break
        # Every row read is processed (its state is no longer pending): the next ones.
        chunk = min(PENDING_CHUNK, limit - result.processed)
        rows = inbox.pending(conn, chunk)
    # The rest stays pending for the next batch when stopped early or at the limit.
    result.more = stopped or result.processed >= limit
    for metric, count in Counter(result.counted).items():
        metrics.increment(conn, metric, at, count)
    return result


def _process_rows(
    conn: Connection,
    rows: list[inbox.PendingEvent],
    result: BatchResult,
    stop: float | None,
    yield_to: Callable[[], bool] | None,
    definition: Any,
    version: int,
    at: int,
    keys: PurgeKeys,
    store_display_name: bool,
    max_age_ms: int | None,
    reply_lifetime: float,
    queue_cfg: QueueSection | None,
    consult_reply: str | None,
) -> bool:
    """Process ROWS in order into RESULT; True when the budget or an urgent write stopped it
    before the last one."""
    for row in rows:
        if result.processed and (
            (stop is not None and time.monotonic() >= stop) or (yield_to and yield_to())
        ):
            return True
        counted = len(result.counted)
        try:
            with inbox.event_savepoint(conn):
                state = _apply(
                    conn,
                    row,
                    definition,
                    version,
                    at,
                    keys,
                    store_display_name,
                    result,
                    max_age_ms,
                    reply_lifetime,
                    queue_cfg,
                    consult_reply,
                )
                inbox.finish(conn, row.id, state, at)
        except Exception as exc:
            # Logged without the event (it may hold a user id); the row is kept as 'failed'.
            log.error("inbox.event_failed", inbox_id=row.id, error=type(exc).__name__)
            inbox.finish(conn, row.id, "failed", at)
            del result.counted[counted:]  # undone with the event's other effects
            result.failed += 1
        result.processed += 1
    return False


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


def _record_replies(
    conn: Connection, now: float, delta: tuple[int, int, int, int, int], error: str
) -> None:
    """Reply outcomes since the last record: LINE health and the daily counters."""
    sent, failed, expired, pushed, push_failed = delta
    if sent or pushed:
        settings.put(conn, "line.last_ok_at", int(now))
    if failed or push_failed:
        settings.put(conn, "line.last_error", {"at": int(now), "error": error})
    for metric, count in (
        ("reply_failed", failed),
        ("reply_expired", expired),
        ("reply_notice_pushed", pushed),
        ("reply_notice_push_failed", push_failed),
    ):
        if count:
            metrics.increment(conn, metric, now, count)


class InboxWorker:
    """Processes pending events in batches (one transaction each) and hands their replies to a
    ReplySender without waiting: the next batch never waits on LINE."""

    def __init__(
        self,
        store: Store,
        line: LineApi | None,
        keys: PurgeKeys,
        wake: asyncio.Event,
        store_display_name: bool = False,
        postback_max_age_seconds: int | None = None,
        *,
        reply_concurrency: int = REPLY_CONCURRENCY,
        reply_lifetime: float = REPLY_TOKEN_LIFETIME_SECONDS,
        queue_cfg: QueueSection | None = None,
        consult_reply: str | None = None,
        notice_wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.notice_wake = notice_wake
        """Wakes the reservation notice worker (a booking confirmation to push)."""
        self.line = line
        self.keys = keys
        self.wake = wake
        self.store_display_name = store_display_name
        self.postback_max_age_seconds = postback_max_age_seconds
        self.reply_lifetime = reply_lifetime
        self.queue_cfg = queue_cfg
        self.consult_reply = consult_reply
        self.processed = 0
        self.running = False
        """While `run` runs (kairand.line.webhook.InlineInbox)."""
        self.behind = False
        """The last batch left events pending (kairand.line.webhook.InlineInbox): until one
        leaves none, the webhook only stores new events and this worker catches up."""
        self.replies = (
            ReplySender(line, reply_concurrency, confirm_later=self._confirm_later)
            if line is not None
            else None
        )
        self._recorded = (0, 0, 0, 0, 0)
        self._recorded_at = 0.0
        self._background: set[asyncio.Task[None]] = set()

    def process_in(self, conn: Connection) -> BatchResult:
        """One batch inside the caller's write transaction (the worker's own, or the webhook's
        insert: kairand.line.webhook.InlineInbox); `take` the result after the commit."""
        return process_batch(
            conn,
            BATCH_SIZE,
            time.time(),
            self.keys,
            self.store_display_name,
            self.postback_max_age_seconds,
            self.reply_lifetime,
            self.queue_cfg,
            self.consult_reply,
            BATCH_BUDGET_SECONDS,
            self.store.urgent_waiting,
        )

    def take(self, result: BatchResult) -> None:
        """After the batch's commit: hand its replies to the sender (without waiting) and, if
        events were left pending, wake the worker's loop for them."""
        self.processed += result.processed
        self.behind = result.more
        if result.processed:
            log.info("inbox.processed", events=result.processed, failed=result.failed)
        if self.line is not None and self.replies is not None:
            for reply in result.replies:
                self.replies.submit(reply)
            if result.want_profile:
                task = asyncio.get_running_loop().create_task(
                    _fetch_display_names(self.store, self.line, result.want_profile)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        if result.more:
            self.wake.set()

    async def run_once(self) -> BatchResult:
        result = await self.store.write(self.process_in)
        self.take(result)
        if (
            self.replies is not None
            and time.monotonic() - self._recorded_at >= RECORD_EVERY_SECONDS
        ):
            await self.record()  # not every batch: a write (and fsync) of its own
        return result

    async def _confirm_later(self, booking_id: int, kind: str) -> None:
        """A booking's confirmation reply could not be made: a push with a stored retry key."""
        await self.store.write(
            reservation_notices.confirm_later, booking_id, kind, int(time.time())
        )
        if self.notice_wake is not None:
            self.notice_wake()

    async def record(self) -> None:
        """Write the reply outcomes since the last call (health, counters), if any."""
        if self.replies is None:
            return
        self._recorded_at = time.monotonic()
        stats = self.replies.stats
        now_counts = stats.counts()
        delta = tuple(a - b for a, b in zip(now_counts, self._recorded, strict=True))
        if not any(delta):
            return
        self._recorded = now_counts
        sent, failed, expired, pushed, push_failed = delta
        if failed or expired or push_failed:
            log.warning(
                "inbox.replies_not_made",
                failed=failed,
                expired=expired,
                pushed=pushed,
                push_failed=push_failed,
            )
        error = f"{failed} replies failed, {push_failed} notices not pushed"
        await self.store.write(
            _record_replies, time.time(), (sent, failed, expired, pushed, push_failed), error
        )

    async def settle(self) -> None:
        """Wait for every reply and profile fetch handed out so far (tests, shutdown)."""
        if self.replies is not None:
            await self.replies.drain()
        await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.record()

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                self.wake.clear()
                try:
                    result = await self.run_once()
                except Exception:
                    log.error("inbox.batch_failed", exc_info=True)
                    await asyncio.sleep(POLL_SECONDS)
                    continue
                if not result.more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                    with contextlib.suppress(Exception):
                        await self.record()  # outcomes of replies that settled meanwhile
        finally:
            self.running = False
            if self.replies is not None:
                await self.replies.close()
            for task in list(self._background):
                task.cancel()


def load_keys() -> PurgeKeys:
    return PurgeKeys(secrets.receipt_hmac_key(), secrets.signing_key())


async def inbox_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the inbox worker runs while the daemon runs."""
    config = app[CONFIG]
    keys = await asyncio.get_running_loop().run_in_executor(None, load_keys)
    worker = InboxWorker(
        app[STORE],
        app.get(LINE),
        keys,
        wake_event(app),
        config.privacy.store_display_name,
        config.conversation.postback_max_age_seconds,
        reply_concurrency=config.line.reply_concurrency,
        reply_lifetime=config.line.reply_token_lifetime_seconds,
        queue_cfg=config.queue,
        consult_reply=consultation_reply(
            config.consultation.contacts, config.consultation.hotlines
        ),
        notice_wake=lambda: reservation_notices.wake(app),
    )
    app[INBOX_WORKER] = worker
    app[INBOX_INLINE] = worker  # the webhook processes new events in their insert transaction
    app[TASKS].worker("inbox-worker", worker.run)
    yield


INBOX_WORKER = web.AppKey("inbox_worker", InboxWorker)
