"""The LINE webhook endpoint: verify, store in the inbox, answer 200 — nothing else.

Order matters: the body size is limited before it is read, the signature is checked over the
raw bytes before anything is parsed, and the events are written to the inbox in one transaction
before 200 is sent. Everything slower (the conversation, replies) is the inbox worker's job, so
the answer comes well inside LINE's 2 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kairand import tls
from kairand.config import Config
from kairand.keys import secrets
from kairand.logs import get_logger
from kairand.runtime import CONFIG, STORE
from kairand.store import inbox
from kairand.store.database import Connection, Store

log = get_logger(__name__)

INBOX_WAKE = web.AppKey("inbox_wake", asyncio.Event)
"""Set after events are committed so the inbox worker starts at once (it also polls)."""

MAX_EVENT_ID = 128


@dataclass
class WebhookStats:
    accepted_requests: int = 0
    accepted_events: int = 0
    invalid_signature: int = 0
    wrong_destination: int = 0
    malformed: int = 0


WEBHOOK_STATS = web.AppKey("webhook_stats", WebhookStats)


def signature_for(channel_secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(channel secret, raw body)) — what LINE puts in x-line-signature."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(channel_secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    expected = signature_for(channel_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


class MalformedBody(ValueError):
    """The (authentic) body is not a webhook envelope Kairan can store."""


def parse_envelope(body: bytes) -> tuple[str, list[inbox.IncomingEvent]]:
    """The destination and the events of a verified body. Tolerant of unknown fields and event
    types; strict only about what the inbox needs (event id, type, timestamp)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody("not JSON") from exc
    if not isinstance(document, dict):
        raise MalformedBody("not an object")
    destination = document.get("destination", "")
    raw_events = document.get("events")
    if not isinstance(destination, str) or not isinstance(raw_events, list):
        raise MalformedBody("no destination or events")
    events = []
    for raw in raw_events:
        if not isinstance(raw, dict):
            raise MalformedBody("event is not an object")
        event_id = raw.get("webhookEventId")
        event_type = raw.get("type")
        timestamp = raw.get("timestamp")
        if (
            not isinstance(event_id, str)
            or not 0 < len(event_id) <= MAX_EVENT_ID
            or not isinstance(event_type, str)
            or not event_type
            or not isinstance(timestamp, int)
            or isinstance(timestamp, bool)
            or not 0 <= timestamp < 2**62
        ):
            raise MalformedBody("event lacks webhookEventId, type or timestamp")
        source = raw.get("source")
        user_id = source.get("userId") if isinstance(source, dict) else None
        events.append(
            inbox.IncomingEvent(
                webhook_event_id=event_id,
                line_user_id=user_id if isinstance(user_id, str) and user_id else None,
                event_type=event_type[:64],
                event_timestamp=timestamp,
                body=json.dumps(raw, ensure_ascii=False, separators=(",", ":")),
            )
        )
    return destination, events


class InboxWriter:
    """Group commit: bodies that arrive while a write is running are stored together in the
    next transaction (one fsync for many requests). Each body's events still commit all at
    once, and no request is answered before its events are committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[list[inbox.IncomingEvent], asyncio.Future[int]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None  # a reference keeps the task alive

    async def add(self, events: list[inbox.IncomingEvent]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((events, future))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    added = await self.store.write(_insert_bodies, [b for b, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), count in zip(batch, added, strict=True):
                    if not future.done():
                        future.set_result(count)
        finally:
            self._flushing = False


def _insert_bodies(conn: Connection, bodies: list[list[inbox.IncomingEvent]]) -> list[int]:
    now = time.time()
    return [inbox.insert_events(conn, events, now) for events in bodies]


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def make_webhook_app(
    config: Config, store: Store, channel_secret: str, wake: asyncio.Event | None = None
) -> web.Application:
    """The webhook's own aiohttp application (served on its own sites)."""
    settings = config.webhook
    app = web.Application(client_max_size=settings.max_body_bytes)
    stats = WebhookStats()
    app[WEBHOOK_STATS] = stats
    writer = InboxWriter(store)

    async def receive(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=settings.max_body_bytes, actual_size=request.content_length
            )
        body = await request.read()  # raises 413 past client_max_size (chunked bodies too)
        # Headers are case-insensitive in aiohttp (CIMultiDict): X-Line-Signature works too.
        if not signature_ok(channel_secret, body, request.headers.get("x-line-signature")):
            stats.invalid_signature += 1
            log.warning(
                "webhook.invalid_signature",
                count=stats.invalid_signature,
                bytes=len(body),
                has_header="x-line-signature" in request.headers,
            )
            return _bad_request("invalid signature")
        try:
            destination, events = parse_envelope(body)
        except MalformedBody as exc:
            stats.malformed += 1
            log.warning("webhook.malformed", count=stats.malformed, reason=str(exc))
            return _bad_request("malformed body")
        if settings.bot_user_id and destination != settings.bot_user_id:
            stats.wrong_destination += 1
            log.warning("webhook.wrong_destination", count=stats.wrong_destination)
            return _bad_request("wrong destination")
        added = await writer.add(events)
        stats.accepted_requests += 1
        stats.accepted_events += added
        if added and wake is not None:
            wake.set()
        log.debug("webhook.accepted", events=len(events), new=added)
        return web.json_response({})

    app.router.add_post(settings.path, receive)
    return app


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    """TLS for the webhook socket when a certificate is configured (it terminates here, not on
    the relay)."""
    settings = config.webhook
    if not settings.tls_cert:
        return None
    return tls.load_server_context(settings.tls_cert, settings.tls_key)


def _prepare_socket_path(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()  # left over from a killed daemon


def _remove_socket(path: Path | None) -> None:
    if path is not None and path.is_socket():
        path.unlink()


async def start_sites(config: Config, app: web.Application) -> tuple[web.AppRunner, list[str]]:
    """Serve APP on the configured unix socket (TLS when configured) and dev TCP listener."""
    settings = config.webhook
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    where: list[str] = []
    try:
        # File work (certificates, socket path) off the event loop.
        context = await loop.run_in_executor(None, server_ssl_context, config)
        if settings.socket is not None:
            path = settings.socket
            await loop.run_in_executor(None, _prepare_socket_path, path)
            site: web.BaseSite = web.UnixSite(runner, str(path), ssl_context=context)
            await site.start()
            await loop.run_in_executor(None, os.chmod, path, settings.socket_mode)
            where.append(f"unix:{path}")
        if settings.tcp_host and settings.tcp_port:
            site = web.TCPSite(runner, settings.tcp_host, settings.tcp_port, ssl_context=context)
            await site.start()
            where.append(f"tcp:{settings.tcp_host}:{settings.tcp_port}")
    except BaseException:
        await runner.cleanup()
        raise
    return runner, where


def wake_event(app: web.Application) -> asyncio.Event:
    """The event shared by the webhook (sets it) and the inbox worker (waits on it)."""
    if INBOX_WAKE not in app:
        app[INBOX_WAKE] = asyncio.Event()
    return app[INBOX_WAKE]


async def webhook_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: serve the webhook while the daemon runs."""
    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    channel_secret = await loop.run_in_executor(None, secrets.get_secret, secrets.CHANNEL_SECRET)
    webhook_app = make_webhook_app(config, app[STORE], channel_secret, wake_event(app))
    runner, where = await start_sites(config, webhook_app)
    log.info("webhook.listening", on=where, tls=bool(config.webhook.tls_cert))
    try:
        yield
    finally:
        await runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(
            None, _remove_socket, config.webhook.socket
        )
