"""Connection guard for the staff API socket: nothing can hold a connection forever.

aiohttp itself waits indefinitely for a request's headers and body: a client that connects and
sends nothing (or half a header line), or declares a 1 GB body and goes silent, was held for
ever, and 150 such connections were all held. The guard wraps each connection's protocol:

* **Connections per peer**: at most `api.max_connections_per_peer` open connections per uid
  (SO_PEERCRED). One more gets a 503 problem+json and is closed at once.
* **Header timeout**: a connection must deliver a complete request head within
  `api.header_timeout_seconds` of connecting; between requests of a kept-alive connection it
  may stay idle for `api.idle_timeout_seconds`. Otherwise it is closed.
* **Body timeout** (`body_guard` middleware): a request body must arrive completely within
  `api.body_timeout_seconds` (408), a declared length over `api.max_body_bytes` is refused
  before reading (413), and a non-empty body must be `application/json` (415).

A request being handled (an open event stream included) is never cut by the header timer: the
middleware tells the guard when a request starts and ends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kairand.api.problems import PREFIX, TITLES, ApiProblem
from kairand.logs import get_logger

log = get_logger(__name__)

_UCRED = struct.Struct("3i")
JSON_TYPE = "application/json"


def _uid_of(transport: asyncio.BaseTransport) -> int | None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    return int(_UCRED.unpack(raw)[1])


def _busy_response(limit: int) -> bytes:
    body = json.dumps(
        {
            "type": PREFIX + "too-many-connections",
            "title": TITLES["too-many-connections"][1],
            "status": TITLES["too-many-connections"][0],
            "detail": (
                f"同じ利用者からの同時接続は {limit} 本までです。"
                "使っていない画面を閉じてから、もう一度お試しください。"
            ),
        },
        ensure_ascii=False,
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """Counts connections per peer and closes connections that stall before a request."""

    def __init__(self, *, header_timeout: float, idle_timeout: float, max_per_peer: int) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_per_peer = max_per_peer
        self.open: Counter[int | None] = Counter()
        self.refused = 0
        self.timed_out = 0
        self._by_transport: dict[asyncio.BaseTransport, _GuardedProtocol] = {}

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_unix_server: aiohttp's, guarded."""
        return lambda: _GuardedProtocol(self, factory())

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.disarm()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.arm(self.idle_timeout)


class _GuardedProtocol(asyncio.Protocol):
    """Delegates to aiohttp's request handler; adds the admission check and the timer."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.peer: int | None = None
        self.admitted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        guard = self.guard
        self.peer = _uid_of(transport)
        if guard.open[self.peer] >= guard.max_per_peer:
            guard.refused += 1
            log.warning(
                "api.connection_refused",
                reason="per_peer_limit",
                uid=self.peer,
                limit=guard.max_per_peer,
                count=guard.refused,
            )
            transport.write(_busy_response(guard.max_per_peer))
            transport.close()
            return
        self.admitted = True
        guard.open[self.peer] += 1
        guard._by_transport[transport] = self
        self.inner.connection_made(transport)
        self.arm(guard.header_timeout)

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self.guard.timed_out += 1
        log.warning("api.connection_timeout", uid=self.peer, count=self.guard.timed_out)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if not self.admitted:
            return
        guard = self.guard
        guard.open[self.peer] -= 1
        if guard.open[self.peer] <= 0:
            del guard.open[self.peer]
        if self.transport is not None:
            guard._by_transport.pop(self.transport, None)
        self.inner.connection_lost(exc)


class GuardedUnixSite(web.UnixSite):
    """web.UnixSite whose connections go through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, path: str, guard: ConnectionGuard) -> None:
        super().__init__(runner, path)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_unix_server(
            self.guard.wrap(server), self._path, backlog=self._backlog
        )


GUARD = web.AppKey("api_connection_guard", ConnectionGuard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _has_body(request: web.Request) -> bool:
    return request.body_exists and (request.content_length is None or request.content_length > 0)


def _closing(problem: ApiProblem) -> web.StreamResponse:
    """The problem as the last answer on this connection: its body was not read (or only
    partly), so the connection cannot carry another request."""
    response = problem.response()
    response.force_close()
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Body limits, then the handler. Runs after the caller was identified (no body of a
    stranger is ever read)."""
    settings = request.app[API_LIMITS]
    raw = settings.raw_routes.get(getattr(request.match_info.route, "name", None) or "")
    if raw is not None and _has_body(request):
        # A route taking raw bytes (an image upload): its own types and limit; the handler
        # streams the body with that limit and the body timeout.
        types, limit = raw
        if (request.content_length or 0) > limit:
            return _closing(
                ApiProblem(
                    "payload-too-large",
                    f"送信できる大きさは {limit} バイトまでです。",
                    field="body",
                )
            )
        if request.content_type not in types:
            return _closing(
                ApiProblem(
                    "unsupported-media-type",
                    f"本文は {' か '.join(sorted(types))} で送信してください。",
                )
            )
        return await handler(request)
    if _has_body(request):
        declared = request.content_length
        if declared is not None and declared > settings.max_body_bytes:
            return _closing(
                ApiProblem(
                    "payload-too-large",
                    f"送信できる大きさは {settings.max_body_bytes} バイトまでです。",
                    field="body",
                )
            )
        if request.content_type != JSON_TYPE:
            return _closing(
                ApiProblem(
                    "unsupported-media-type",
                    "本文は JSON で、Content-Type: application/json を付けて送信してください。",
                )
            )
        try:
            async with asyncio.timeout(settings.body_timeout):
                await request.read()  # kept by aiohttp: handlers read it from memory
        except TimeoutError:
            log.warning("api.body_timeout", method=request.method)
            return _closing(
                ApiProblem(
                    "request-timeout",
                    f"本文が {settings.body_timeout:g} 秒以内に届きませんでした。"
                    "通信状態を確認して、もう一度お試しください。",
                )
            )
    return await handler(request)


@web.middleware
async def request_timer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: a request is being handled, so its connection's header timer stops (an
    event stream may stay open for hours); afterwards the idle timer starts."""
    guard = request.app.get(GUARD)
    if guard is not None:
        guard.request_started(request.transport)
    try:
        return await handler(request)
    finally:
        if guard is not None:
            guard.request_finished(request.transport)


body_guard = web.middleware(_guarded)
"""After the access check: body limits, media type and body timeout."""


class Limits:
    def __init__(
        self,
        max_body_bytes: int,
        body_timeout: float,
        raw_routes: dict[str, tuple[frozenset[str], int]] | None = None,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.raw_routes = raw_routes or {}
        """Route name -> (accepted content types, byte limit) for routes whose body is not
        JSON (image upload); their handler reads the body itself."""


API_LIMITS = web.AppKey("api_limits", Limits)
