"""Webhook events built exactly as LINE builds them, signed with the channel secret and POSTed to
the bot's webhook URL (TCP, unix socket, optionally TLS), with LINE's redelivery (same
webhookEventId, isRedelivery true) and injectable duplicates and reordering."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from ulid import ULID

from kairand.logs import get_logger
from kairand.simulator.clock import Clock

log = get_logger(__name__)


def sign(channel_secret: str, body: bytes) -> str:
    """LINE's x-line-signature: base64(HMAC-SHA256(secret, raw body))."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _ulid(clock: Clock, rng: random.Random) -> str:
    ms = int(clock.now() * 1000)
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + rng.getrandbits(80).to_bytes(10, "big")))


class EventFactory:
    """Builds webhook event objects with every field LINE sends (see webhook.yml)."""

    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self.clock = clock
        self.rng = random.Random(f"events:{seed}")
        self._message_seq = 590_000_000_000_000_000

    def _base(self, event_type: str, user_id: str) -> dict[str, Any]:
        return {
            "type": event_type,
            "mode": "active",
            "timestamp": int(self.clock.now() * 1000),
            "source": {"type": "user", "userId": user_id},
            "webhookEventId": _ulid(self.clock, self.rng),
            "deliveryContext": {"isRedelivery": False},
        }

    def follow(self, user_id: str, reply_token: str, unblocked: bool = False) -> dict[str, Any]:
        return {
            **self._base("follow", user_id),
            "replyToken": reply_token,
            "follow": {"isUnblocked": unblocked},
        }

    def unfollow(self, user_id: str) -> dict[str, Any]:
        return self._base("unfollow", user_id)

    def text(self, user_id: str, reply_token: str, text: str) -> dict[str, Any]:
        self._message_seq += 1
        return {
            **self._base("message", user_id),
            "replyToken": reply_token,
            "message": {
                "type": "text",
                "id": str(self._message_seq),
                "text": text,
                "quoteToken": f"q{self.rng.getrandbits(160):040x}",
            },
        }

    def postback(
        self, user_id: str, reply_token: str, data: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        postback: dict[str, Any] = {"data": data}
        if params:
            postback["params"] = params
        return {**self._base("postback", user_id), "replyToken": reply_token, "postback": postback}


@dataclass
class WebhookTarget:
    """Where the bot listens. `unix_socket` overrides the URL's host and port."""

    url: str
    unix_socket: str | None = None
    ca_file: str | None = None
    insecure: bool = False  # accept any certificate (the daemon's self-signed dev cert)

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass
class SenderStats:
    bodies: int = 0
    events: int = 0
    failures: int = 0
    redeliveries: int = 0
    duplicates: int = 0
    dropped: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))  # queue -> POST


@dataclass
class _Pending:
    event: dict[str, Any]
    enqueued: float
    attempt: int = 0


class WebhookSender:
    """Batches queued events into bodies (several users per body, as LINE does) and posts them."""

    def __init__(
        self,
        target: WebhookTarget,
        channel_secret: str,
        destination: str,
        *,
        seed: int = 0,
        max_events_per_body: int = 10,
        concurrency: int = 8,
        timeout_s: float = 2.0,
        redelivery: bool = True,
        redelivery_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
        duplicate_ratio: float = 0.0,
        reorder_ratio: float = 0.0,
    ) -> None:
        self.target = target
        self.channel_secret = channel_secret
        self.destination = destination
        self.max_events_per_body = max_events_per_body
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.redelivery = redelivery
        self.redelivery_delays_s = redelivery_delays_s
        self.duplicate_ratio = duplicate_ratio
        self.reorder_ratio = reorder_ratio
        self.rng = random.Random(f"webhook:{seed}")
        self.stats = SenderStats()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._session: aiohttp.ClientSession | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._ssl: ssl.SSLContext | bool = False

    async def start(self) -> None:
        # Loading CA files reads the disk: not on the event loop.
        self._ssl = await asyncio.to_thread(self.target.ssl_context)
        connector: aiohttp.BaseConnector
        if self.target.unix_socket:
            connector = aiohttp.UnixConnector(path=self.target.unix_socket)
        else:
            connector = aiohttp.TCPConnector(limit=self.concurrency * 2)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        self._workers = [
            asyncio.create_task(self._worker(), name=f"sim-webhook-{i}")
            for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        for task in [*self._workers, *self._retries]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._retries, return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(_Pending(event, time.monotonic()))
        if self.duplicate_ratio and self.rng.random() < self.duplicate_ratio:
            # LINE may send the same event twice even without redelivery.
            self.stats.duplicates += 1
            self._queue.put_nowait(_Pending(json.loads(json.dumps(event)), time.monotonic()))

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self._in_flight == 0 and not self._retries

    async def post_body(self, events: list[dict[str, Any]]) -> int:
        """POST one signed body; returns the HTTP status (0 for a network error or timeout)."""
        assert self._session is not None, "start() first"
        body = json.dumps(
            {"destination": self.destination, "events": events},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-line-signature": sign(self.channel_secret, body),
            "User-Agent": "LineBotWebhook/2.0",
        }
        started = time.monotonic()
        try:
            async with self._session.post(
                self.target.url, data=body, headers=headers, ssl=self._ssl
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("simulator.webhook.error", error=type(exc).__name__)
            status = 0
        self.stats.latencies_ms.append((time.monotonic() - started) * 1000)
        self.stats.bodies += 1
        return status

    async def _worker(self) -> None:
        while True:
            first = await self._queue.get()
            self._in_flight += 1
            try:
                batch = [first]
                while len(batch) < self.max_events_per_body and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                if self.reorder_ratio and len(batch) > 1 and self.rng.random() < self.reorder_ratio:
                    self.rng.shuffle(batch)
                now = time.monotonic()
                for p in batch:
                    if p.attempt == 0:
                        self.stats.lag_ms.append((now - p.enqueued) * 1000)
                status = await self.post_body([p.event for p in batch])
                self.stats.events += len(batch)
                if not 200 <= status < 300:
                    self.stats.failures += 1
                    self._schedule_redelivery(batch)
            finally:
                self._in_flight -= 1

    def _schedule_redelivery(self, batch: list[_Pending]) -> None:
        limit = len(self.redelivery_delays_s) if self.redelivery else 0
        retry = [p for p in batch if p.attempt < limit]
        self.stats.dropped += len(batch) - len(retry)
        if not retry:
            return
        delay = self.redelivery_delays_s[min(p.attempt for p in retry)]

        async def later() -> None:
            await asyncio.sleep(delay)
            for p in retry:
                # Same webhookEventId, timestamp and reply token; only the flag changes.
                event = {**p.event, "deliveryContext": {"isRedelivery": True}}
                self.stats.redeliveries += 1
                self._queue.put_nowait(_Pending(event, p.enqueued, p.attempt + 1))

        task = asyncio.create_task(later(), name="sim-webhook-redelivery")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
