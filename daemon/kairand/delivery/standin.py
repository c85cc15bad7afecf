"""A small stand-in of LINE's sending endpoints (multicast, push, quota) with retry-key
semantics, rate limiting, a monthly quota, simulated latency and injectable faults.

Used by the delivery tests and bench/delivery.py until they run against the full simulator
(kairand.simulator, issue-3). It records a ledger of every accepted request, so a test can
assert who received what, how many times.

Faults (probabilities per request, drawn from a seeded RNG):
- error_5xx: answer 500 without accepting;
- lost_response: accept (ledger + retry key), then answer 500 — the sender cannot know;
- timeout: accept, then hold the answer longer than the client waits;
- timeout_before: hold without accepting.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RATE_MESSAGE = "The API rate limit has been exceeded. Try again later."
QUOTA_MESSAGE = "You have reached your monthly limit."


@dataclass
class Faults:
    error_5xx: float = 0.0
    lost_response: float = 0.0
    timeout: float = 0.0
    timeout_before: float = 0.0
    hang_seconds: float = 30.0


@dataclass
class Accepted:
    request_id: str
    retry_key: str | None
    to: list[str]
    texts: list[str]
    notification_disabled: bool
    at: float


@dataclass
class StandIn:
    seed: int = 0
    latency: tuple[float, float] = (0.0, 0.0)
    rate_per_second: float | None = None
    """Token bucket like LINE's (None: unlimited)."""
    quota_type: str = "none"
    quota_value: int = 0
    usage: int = 0
    faults: Faults = field(default_factory=Faults)
    multicasts: list[Accepted] = field(default_factory=list)
    pushes: list[Accepted] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    rejected_rate: int = 0
    max_concurrent: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._tokens = self.rate_per_second or 0.0
        self._last = time.monotonic()
        self._concurrent = 0
        self.first_request_at: float | None = None
        self.last_request_at: float | None = None

    # -- what tests look at --------------------------------------------------------------

    def received(self) -> Counter[str]:
        """LINE user id -> number of accepted multicasts that included it."""
        counts: Counter[str] = Counter()
        for req in self.multicasts:
            counts.update(req.to)
        return counts

    # -- HTTP ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v2/bot/message/multicast", self._multicast)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_get("/v2/bot/message/quota", self._quota)
        app.router.add_get("/v2/bot/message/quota/consumption", self._consumption)
        return app

    def _rate_ok(self) -> bool:
        if self.rate_per_second is None:
            return True
        now = time.monotonic()
        self._tokens = min(
            self.rate_per_second, self._tokens + (now - self._last) * self.rate_per_second
        )
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _send(self, request: web.Request, ledger: list[Accepted]) -> web.StreamResponse:
        self.requests += 1
        now = time.monotonic()
        self.first_request_at = self.first_request_at or now
        self.last_request_at = now
        body: dict[str, Any] = await request.json()
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if not 1 <= len(body.get("messages", [])) <= 5 or len(to) > 500:
            return _error(400, "The request body has 1 error(s)")
        if not self._rate_ok():
            self.rejected_rate += 1
            return _error(429, RATE_MESSAGE)
        key = request.headers.get("X-Line-Retry-Key")
        self._concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self._concurrent)
        try:
            low, high = self.latency
            if high > 0:
                await asyncio.sleep(self.rng.uniform(low, high))
            if key is not None and key in self.keys:
                return web.json_response(
                    {"message": "The retry key is already accepted"},
                    status=409,
                    headers={"x-line-accepted-request-id": self.keys[key]},
                )
            f = self.faults
            draw = self.rng.random()
            if draw < f.error_5xx:
                return _error(500, "An error occurred on the server")
            if draw < f.error_5xx + f.timeout_before:
                await asyncio.sleep(f.hang_seconds)
                return _error(500, "An error occurred on the server")
            if self.quota_type == "limited" and self.usage + len(to) > self.quota_value:
                return _error(429, QUOTA_MESSAGE)
            request_id = str(uuid.uuid4())
            if key is not None:
                self.keys[key] = request_id
            texts = [m.get("text", "") for m in body["messages"]]
            ledger.append(
                Accepted(
                    request_id, key, list(to), texts, bool(body.get("notificationDisabled")), now
                )
            )
            self.usage += len(to)
            if draw < f.error_5xx + f.timeout_before + f.lost_response:
                return _error(500, "An error occurred on the server")
            if draw < f.error_5xx + f.timeout_before + f.lost_response + f.timeout:
                await asyncio.sleep(f.hang_seconds)
            return web.json_response({}, headers={"x-line-request-id": request_id})
        finally:
            self._concurrent -= 1

    async def _multicast(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, self.multicasts)

    async def _push(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, self.pushes)

    async def _quota(self, request: web.Request) -> web.StreamResponse:
        if self.quota_type == "limited":
            return web.json_response({"type": "limited", "value": self.quota_value})
        return web.json_response({"type": "none"})

    async def _consumption(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"totalUsage": self.usage})


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
    )


async def serve(
    standin: StandIn, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start STANDIN on HOST:PORT; returns the runner (cleanup it) and the base URL."""
    runner = web.AppRunner(standin.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[attr-defined]
    actual = sockets[0].getsockname()[1]
    return runner, f"http://{host}:{actual}"
