"""The one place that builds line-bot-sdk clients (real LINE or the simulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
)


@dataclass
class LineApi:
    messaging: AsyncMessagingApi
    blob: AsyncMessagingApiBlob
    timeout: float


MAX_CONNECTIONS = 64
"""Concurrent HTTP connections to the Messaging API (>= config.delivery.concurrency)."""


@asynccontextmanager
async def line_api(
    api_base: str, access_token: str, request_timeout: float = 10.0
) -> AsyncIterator[LineApi]:
    """Yield Messaging API clients; the underlying HTTP session is closed on exit.

    With `host` set, line-bot-sdk sends every URL (also api-data.line.me ones) to host + path,
    which is how training mode points it at the simulator. Pass `_request_timeout=api.timeout`
    on calls: the SDK's default is 300 s.
    """
    configuration = Configuration(host=api_base.rstrip("/"), access_token=access_token)
    # The SDK's default pool is 5 connections per CPU (10 on a 2-core appliance), which caps
    # multicast at ~100 req/s at LINE's latency; the sender needs rate x latency in flight.
    configuration.connection_pool_maxsize = MAX_CONNECTIONS
    async with AsyncApiClient(configuration) as client:
        yield LineApi(AsyncMessagingApi(client), AsyncMessagingApiBlob(client), request_timeout)
