"""Replies to residents: concurrent across residents, in order for each one, bounded by the
reply token's lifetime.

The inbox worker commits a batch of events and hands their replies to a `ReplySender`
without waiting for them: a slow or hung LINE delays only the residents whose replies are in
flight, never the processing of the next events (head-of-line blocking: with 2 s reply
latency, 16 replies at a time and a wait for the whole batch, an onboarding of thousands of
residents once left most of them without an answer until their tokens had expired).

* Across residents, up to `concurrency` replies are in flight at once.
* One resident's replies go out in the order their events were processed: each waits for the
  previous one of the same resident (a chain keyed by the LINE user id, held in memory only).
* A reply token is usable for about a minute after the event. Each reply has a deadline
  (`received + lifetime`); the request's timeout never runs past it, and a reply whose
  deadline passed before it could be sent is not attempted.
* What cannot be replied in time (expired before sending, refused by LINE, timed out) is
  handled: the store effects were already committed, so the resident's state is saved and the
  next interaction shows them where they are. Only where the resident must know (their
  deliveries were stopped or resumed, their data deleted, their registration completed) a
  push carries the essential message instead; everything is counted (`ReplyStats`, daily
  metrics `reply_expired` / `reply_failed` / `reply_notice_pushed`).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import ClientError
from linebot.v3.messaging import ApiException, PushMessageRequest

from kairand.line.client import LineApi, reply_json
from kairand.logs import get_logger

log = get_logger(__name__)

REPLY_CONCURRENCY = 1000
"""Replies in flight at once, across residents (LINE allows 2,000 reply requests/s; at 2 s
latency 1,000 in flight carry 500 replies/s)."""
REPLY_TOKEN_LIFETIME_SECONDS = 50.0
"""LINE: a reply token is usable for about a minute; 50 s leaves room for clocks and network."""
REPLY_STARTS_PER_TURN = 16
"""Replies started per turn of the event loop. A committed batch hands over up to 200
replies at once; started together, their first steps (build the request, send it) ran back to
back, about 0.2-0.3 ms each on a 2-core appliance, and every webhook answer and staff API call
behind them waited for the whole burst. Started a few per turn, the loop reads its sockets in
between; the replies still start within milliseconds."""
FAILURE_LOG_SECONDS = 1.0
"""At most one `inbox.reply_failed` line this often (with how many failed since the last one):
when LINE refuses or times out every reply of a busy minute, a line per reply (1,000 a second
in the mixed-load benchmark) took a tenth of the event loop. The counts are all kept
(ReplyStats, daily metrics, `inbox.replies_not_made`)."""


@dataclass(frozen=True)
class PendingReply:
    reply_token: str
    messages: tuple[dict[str, Any], ...]
    user_id: str = ""
    """Orders one resident's replies (in memory only; empty: no ordering, no push)."""
    deadline: float = math.inf
    """Epoch seconds after which the reply token is no longer usable."""
    notice: tuple[dict[str, Any], ...] = ()
    """Pushed instead when the reply cannot be made in time: only what the resident must know."""
    confirmation: tuple[int, str] | None = None
    """(booking id, notice kind): when the reply cannot be made, the sender's `confirm_later`
    hook records that booking notice (a push with a stored retry key) instead of `notice`."""


@dataclass
class ReplyStats:
    sent: int = 0
    failed: int = 0
    """LINE refused the reply, or it failed in transit."""
    expired: int = 0
    """The deadline passed before the reply could be sent (or during the request)."""
    pushed: int = 0
    """Must-know messages pushed because the reply could not be made."""
    push_failed: int = 0
    in_flight: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.sent, self.failed, self.expired, self.pushed, self.push_failed)


def _essential(messages: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The first text without its buttons: a push arrives later, when buttons may be stale."""
    for message in messages:
        if message.get("type") == "text":
            return ({"type": "text", "text": message["text"]},)
    return ()


def must_know(reply: PendingReply, essential: bool) -> PendingReply:
    """REPLY with its notice set when the resident must learn the outcome even without a
    reply (ESSENTIAL: the event stopped/resumed deliveries, deleted data or completed
    registration)."""
    return replace(reply, notice=_essential(reply.messages)) if essential else reply


class ReplySender:
    """Sends replies concurrently across residents and in order for each resident."""

    def __init__(
        self,
        line: LineApi,
        concurrency: int = REPLY_CONCURRENCY,
        clock: Callable[[], float] = time.time,
        confirm_later: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self.line = line
        self.clock = clock
        self.confirm_later = confirm_later
        self.stats = ReplyStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued: deque[PendingReply] = deque()
        """Submitted, not yet started (REPLY_STARTS_PER_TURN at a time, in order)."""
        self._dispatcher: asyncio.Task[None] | None = None
        self._failure_logged_at = -math.inf
        self._failures_unlogged = 0

    def _failed(self, **reason: Any) -> None:
        """Log a failed reply, at most once per FAILURE_LOG_SECONDS (the rest counted)."""
        self._failures_unlogged += 1
        now = time.monotonic()
        if now - self._failure_logged_at >= FAILURE_LOG_SECONDS:
            log.warning("inbox.reply_failed", failures=self._failures_unlogged, **reason)
            self._failure_logged_at = now
            self._failures_unlogged = 0

    def submit(self, reply: PendingReply) -> None:
        """Queue REPLY after the same resident's earlier ones; returns at once."""
        self._queued.append(reply)
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="inbox-reply-dispatch"
            )

    async def _dispatch(self) -> None:
        """Start the queued replies in submission order, REPLY_STARTS_PER_TURN per loop turn."""
        try:
            while self._queued:
                for _ in range(min(REPLY_STARTS_PER_TURN, len(self._queued))):
                    self._start(self._queued.popleft())
                await asyncio.sleep(0)
        finally:
            self._dispatcher = None

    def _start(self, reply: PendingReply) -> None:
        previous = self._tails.get(reply.user_id) if reply.user_id else None
        task = asyncio.get_running_loop().create_task(
            self._after(previous, reply), name="inbox-reply"
        )
        self._tasks.add(task)
        if reply.user_id:
            self._tails[reply.user_id] = task
        task.add_done_callback(functools.partial(self._done, user_id=reply.user_id))

    def _done(self, task: asyncio.Task[None], user_id: str) -> None:
        self._tasks.discard(task)
        if user_id and self._tails.get(user_id) is task:
            del self._tails[user_id]  # nothing of this resident is queued any more

    @property
    def pending(self) -> int:
        return len(self._queued) + len(self._tasks)

    async def drain(self) -> None:
        """Wait until every submitted reply is settled (sent, failed, expired or pushed)."""
        while self._tasks or self._dispatcher is not None:
            waiting = [*self._tasks, *([self._dispatcher] if self._dispatcher else [])]
            await asyncio.gather(*waiting, return_exceptions=True)

    async def close(self) -> None:
        self._queued.clear()  # never started: dropped like the cancelled ones below
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        for task in list(self._tasks):
            task.cancel()
        dispatcher = [self._dispatcher] if self._dispatcher is not None else []
        await asyncio.gather(*list(self._tasks), *dispatcher, return_exceptions=True)

    async def _after(self, previous: asyncio.Task[None] | None, reply: PendingReply) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # this resident's earlier reply first
        async with self._slots:
            self.stats.in_flight += 1
            try:
                await self._send(reply)
            finally:
                self.stats.in_flight -= 1

    async def _send(self, reply: PendingReply) -> None:
        line = self.line
        started = self.clock()
        remaining = reply.deadline - started
        if remaining <= 0:
            self.stats.expired += 1
            await self._late(reply)
            return
        body = {"replyToken": reply.reply_token, "messages": list(reply.messages)}
        try:
            await reply_json(line, body, min(line.timeout, remaining))
        except ApiException as exc:
            self.stats.failed += 1
            self._failed(status=exc.status)
            await self._late(reply)
        except TimeoutError:
            # Cut off at the token's deadline (or the client timeout): maybe delivered, maybe
            # not. A must-know message is pushed anyway: a duplicate notice beats none.
            if self.clock() >= reply.deadline:
                self.stats.expired += 1
            else:
                self.stats.failed += 1
            self._failed(error="TimeoutError")
            await self._late(reply)
        except (ClientError, OSError) as exc:
            self.stats.failed += 1
            self._failed(error=type(exc).__name__)
            await self._late(reply)
        except Exception as exc:  # e.g. an unparseable answer: never stop the worker
            self.stats.failed += 1
            self._failed(error=type(exc).__name__)
        else:
            self.stats.sent += 1
            self.stats.latencies_ms.append((self.clock() - started) * 1000)
            if len(self.stats.latencies_ms) > 10_000:
                del self.stats.latencies_ms[:5_000]

    async def _late(self, reply: PendingReply) -> None:
        if reply.confirmation is not None and self.confirm_later is not None:
            # A booking confirmation: pushed by the reservation notice worker with a retry key
            # stored first (a restart never sends it twice; 429/5xx are retried).
            try:
                await self.confirm_later(*reply.confirmation)
            except Exception as exc:  # the store refused: the generic notice push below
                log.warning("inbox.confirmation_not_recorded", error=type(exc).__name__)
            else:
                self.stats.pushed += 1
                return
        if not reply.notice or not reply.user_id:
            return  # state is saved; the next interaction shows the resident where they are
        request = PushMessageRequest.from_dict(
            {"to": reply.user_id, "messages": list(reply.notice)}
        )
        try:
            await self.line.messaging.push_message(
                request, x_line_retry_key=str(uuid.uuid4()), _request_timeout=self.line.timeout
            )
        except Exception as exc:  # any failure: counted, never retried in a loop
            self.stats.push_failed += 1
            log.warning("inbox.notice_push_failed", error=type(exc).__name__)
        else:
            self.stats.pushed += 1


async def send_replies(line: LineApi, replies: list[PendingReply]) -> tuple[int, int]:
    """Send REPLIES and wait for them; returns (sent, not sent)."""
    sender = ReplySender(line)
    for reply in replies:
        sender.submit(reply)
    await sender.drain()
    stats = sender.stats
    return stats.sent, stats.failed + stats.expired
