"""The LINE webhook endpoint: verify, store in the inbox, answer 200 — nothing else.

Order matters: the body size is limited before it is read, the signature is checked over the
raw bytes before anything is parsed, and the events are written to the inbox in one transaction
before 200 is sent. Everything slower (the conversation, replies) is the inbox worker's job, so
the answer comes well inside LINE's 2 seconds. While the worker runs, it does that job inside the
insert's own transaction (`InlineInbox`, bounded by its 25 ms batch budget): a resident's step
is answered after one commit, not two (bench/reservations.py, the booking rush).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from kairand import tls
from kairand.config import Config
from kairand.keys import secrets
from kairand.line.media import add_media_routes
from kairand.logs import get_logger
from kairand.runtime import CONFIG, SENDING_GATE, STORE
from kairand.store import inbox, metrics
from kairand.store.database import Connection, Store

log = get_logger(__name__)

INBOX_WAKE = web.AppKey("inbox_wake", asyncio.Event)
"""Set after events are committed so the inbox worker starts at once (it also polls)."""


class InlineInbox(Protocol):
    """Processes pending events inside the webhook's own insert transaction (the inbox
    worker, kairand.line.inbox): a resident's event is answered after one commit instead of
    two, without waiting for the worker to wake and queue its own transaction."""

    running: bool
    """False before the worker starts and once it stops (its replies can no longer go out):
    events then stay pending for the next start."""

    behind: bool
    """Events are pending beyond what one batch processes: the webhook then only stores new
    ones (processing them inline would make every ack wait for a backlog batch)."""

    def process_in(self, conn: Connection) -> Any:
        """In the writer thread, inside the insert's transaction; raises to be undone."""

    def take(self, result: Any) -> None:
        """On the event loop, after the commit: send the replies, wake for what is left."""


INBOX_INLINE = web.AppKey("inbox_inline", InlineInbox)

MAX_EVENT_ID = 128
USER_ID_RE = re.compile(r"U[0-9a-f]{32}")
"""A LINE user id: "U" and 32 lowercase hex digits. Anything else in `source.userId` is not
from LINE; stored, it would become a resident whose id makes LINE refuse (400) every multicast
batch it is in."""
MAX_DEPTH = 32
"""Deepest nesting accepted in a body. LINE's deepest event (a postback with params inside an
event inside the envelope) is about 6 levels; json recurses per level and fails with
RecursionError (once an HTTP 500) near 1,000."""


@dataclass
class WebhookStats:
    accepted_requests: int = 0
    accepted_events: int = 0
    invalid_signature: int = 0
    wrong_destination: int = 0
    malformed: int = 0
    invalid_user_id: int = 0


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


def _no_constant(name: str) -> Any:
    raise MalformedBody(f"{name} is not JSON")


def _check_values(document: Any) -> None:
    """Refuse what LINE never sends and the store cannot keep: nesting deeper than MAX_DEPTH
    and strings with lone surrogates (valid JSON escapes, not encodable as UTF-8). Iterative,
    so no input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise MalformedBody("string is not valid Unicode") from None
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise MalformedBody("nested too deeply")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items if isinstance(item, str | dict | list))


@dataclass(frozen=True)
class Envelope:
    destination: str
    events: list[inbox.IncomingEvent]
    invalid_user_ids: int = 0
    """Events dropped because `source.userId` is present but not a LINE user id."""


def parse_envelope(body: bytes) -> Envelope:
    """The destination and the events of a verified body. Tolerant of unknown fields and event
    types; strict only about what the inbox needs (event id, type, timestamp). Anything LINE
    could never send (not UTF-8, NaN/Infinity, nesting deeper than MAX_DEPTH, lone
    surrogates) is a MalformedBody (400), never an unhandled error (500)."""
    try:
        # LINE sends UTF-8; json.loads(bytes) would also guess UTF-16/32.
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError as exc:
        raise MalformedBody("nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody("not JSON") from exc
    _check_values(document)
    if not isinstance(document, dict):
        raise MalformedBody("not an object")
    destination = document.get("destination", "")
    raw_events = document.get("events")
    if not isinstance(destination, str) or not isinstance(raw_events, list):
        raise MalformedBody("no destination or events")
    events = []
    invalid_user_ids = 0
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
        if user_id is not None and not (isinstance(user_id, str) and USER_ID_RE.fullmatch(user_id)):
            invalid_user_ids += 1  # dropped: never stored, never a resident
            continue
        events.append(
            inbox.IncomingEvent(
                webhook_event_id=event_id,
                line_user_id=user_id,
                event_type=event_type[:64],
                event_timestamp=timestamp,
                body=json.dumps(raw, ensure_ascii=False, separators=(",", ":")),
            )
        )
    return Envelope(destination, events, invalid_user_ids)


class InboxWriter:
    """Group commit: bodies that arrive while a write is running are stored together in the
    next transaction (one fsync for many requests). Each body's events still commit all at
    once, and no request is answered before its events are committed.

    With an INLINE processor (the daemon's inbox worker), the pending events are also
    processed in that transaction, each in its own savepoint as the worker does, within the
    worker's time budget; if the processing fails it is undone alone and the events stay
    pending for the worker. Crash safety is unchanged: events and their effects commit
    together, and LINE is answered only after the commit."""

    def __init__(
        self, store: Store, inline: Callable[[], InlineInbox | None] | None = None
    ) -> None:
        self.store = store
        self.inline = inline
        self._queue: list[tuple[Envelope, asyncio.Future[tuple[int, bool]]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None  # a reference keeps the task alive

    async def add(self, envelope: Envelope) -> tuple[int, bool]:
        """(events newly stored, whether they were processed in the same transaction)."""
        future: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()
        self._queue.append((envelope, future))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                processor = self.inline() if self.inline is not None else None
                if processor is not None and (not processor.running or processor.behind):
                    processor = None
                process = processor.process_in if processor is not None else None
                try:
                    added, result = await self.store.write(
                        _insert_bodies, [b for b, _ in batch], process, urgent=True
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                if processor is not None and result is not None:
                    try:
                        processor.take(result)
                    except Exception as exc:  # committed: LINE must still get its 200
                        log.error("webhook.inline_take_failed", error=type(exc).__name__)
                for (_, future), count in zip(batch, added, strict=True):
                    if not future.done():
                        future.set_result((count, result is not None))
        finally:
            self._flushing = False


def _insert_bodies(
    conn: Connection, bodies: list[Envelope], process: Callable[[Connection], Any] | None = None
) -> tuple[list[int], Any]:
    """Store the bodies' events; with PROCESS, process what is pending in the same
    transaction (None: not processed, the inbox worker will)."""
    now = time.time()
    dropped = sum(b.invalid_user_ids for b in bodies)
    if dropped:
        metrics.increment(conn, "webhook_invalid_user_id", now, dropped)
    added = inbox.insert_bodies(conn, [body.events for body in bodies], now)
    if process is None or not any(added):
        return added, None
    try:
        with inbox.batch_savepoint(conn):
            return added, process(conn)
    except Exception as exc:
        # Undone alone: the events stay pending and the worker (woken) processes them.
        log.error("webhook.inline_processing_failed", error=type(exc).__name__)
        return added, None


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def make_webhook_app(
    config: Config,
    store: Store,
    channel_secret: str,
    wake: asyncio.Event | None = None,
    inline: Callable[[], InlineInbox | None] | None = None,
) -> web.Application:
    """The webhook's own aiohttp application (served on its own sites). INLINE: the inbox
    worker that processes new events in their insert transaction, once it runs."""
    settings = config.webhook
    app = web.Application(client_max_size=settings.max_body_bytes)
    stats = WebhookStats()
    app[WEBHOOK_STATS] = stats
    writer = InboxWriter(store, inline)

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
            parsed = parse_envelope(body)
        except MalformedBody as exc:
            stats.malformed += 1
            log.warning("webhook.malformed", count=stats.malformed, reason=str(exc))
            return _bad_request("malformed body")
        if settings.bot_user_id and parsed.destination != settings.bot_user_id:
            stats.wrong_destination += 1
            log.warning("webhook.wrong_destination", count=stats.wrong_destination)
            return _bad_request("wrong destination")
        if parsed.invalid_user_ids:
            stats.invalid_user_id += parsed.invalid_user_ids
            log.warning(
                "webhook.invalid_user_id",
                count=stats.invalid_user_id,
                dropped=parsed.invalid_user_ids,
            )
        added, processed = await writer.add(parsed)
        stats.accepted_requests += 1
        stats.accepted_events += added
        if added and wake is not None and not processed:
            wake.set()
        log.debug("webhook.accepted", events=len(parsed.events), new=added)
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


def inline_now(app: web.Application) -> InlineInbox | None:
    """The inbox worker, to process new events in their insert transaction, except while a
    delivery is being sent. Then the webhook only stores them (its urgent write stays short)
    and the worker's own batches, in the ordinary lane, take turns with the sender's claims:
    processed inline, 1,000 events/s held the writer so long that a 1M delivery fell to 0.14
    of LINE's rate (bench/delivery.py --mixed; 0.57 with the events stored only)."""
    gate = app.get(SENDING_GATE)
    if gate is not None and not gate.is_open:
        return None
    return app.get(INBOX_INLINE)


async def webhook_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: serve the webhook while the daemon runs."""
    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    channel_secret = await loop.run_in_executor(None, secrets.get_secret, secrets.CHANNEL_SECRET)
    webhook_app = make_webhook_app(
        config, app[STORE], channel_secret, wake_event(app), inline=lambda: inline_now(app)
    )
    add_media_routes(webhook_app, config, app[STORE])  # images go out the same way
    runner, where = await start_sites(config, webhook_app)
    log.info("webhook.listening", on=where, tls=bool(config.webhook.tls_cert))
    try:
        yield
    finally:
        await runner.cleanup()
        await asyncio.get_running_loop().run_in_executor(
            None, _remove_socket, config.webhook.socket
        )
