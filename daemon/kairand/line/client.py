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

MESSAGING_API_BASE = "https://api.line.me"
"""LINE's Messaging API host (the spec's root `servers`)."""
DATA_API_BASE = "https://api-data.line.me"
"""LINE's data host: the operations whose spec `servers` is api-data (rich-menu images,
content). LINE does not serve them on api.line.me."""


@dataclass
class LineApi:
    messaging: AsyncMessagingApi
    blob: AsyncMessagingApiBlob
    timeout: float


MAX_CONNECTIONS = 64
"""Concurrent HTTP connections to the Messaging API (>= config.delivery.concurrency)."""
MAX_DATA_CONNECTIONS = 4
"""The data host carries only rare uploads (rich-menu images)."""


def _configuration(host: str, access_token: str, pool: int) -> Configuration:
    configuration = Configuration(host=host.rstrip("/"), access_token=access_token)
    configuration.connection_pool_maxsize = pool
    return configuration


@asynccontextmanager
async def line_api(
    api_base: str,
    access_token: str,
    request_timeout: float = 10.0,
    data_base: str = DATA_API_BASE,
    connections: int = MAX_CONNECTIONS,
) -> AsyncIterator[LineApi]:
    """Yield Messaging API clients; the underlying HTTP sessions are closed on exit.

    With `host` set, line-bot-sdk sends every URL to host + path, so one Configuration for both
    would send the rich-menu upload to api.line.me, where LINE does not serve it. The messaging
    client (`api_base`) and the blob client (`data_base`) therefore each get their own
    Configuration and HTTP session; training mode points both at the simulator's two listeners.
    Pass `_request_timeout=api.timeout` on calls: the SDK's default is 300 s. CONNECTIONS
    sizes the messaging pool: the sender's requests plus the inbox's replies in flight.
    """
    # The SDK's default pool is 5 connections per CPU (10 on a 2-core appliance), which caps
    # multicast at ~100 req/s at LINE's latency; the sender needs rate x latency in flight.
    messaging = _configuration(api_base, access_token, connections)
    data = _configuration(data_base, access_token, MAX_DATA_CONNECTIONS)
    async with AsyncApiClient(messaging) as client, AsyncApiClient(data) as data_client:
        yield LineApi(
            AsyncMessagingApi(client), AsyncMessagingApiBlob(data_client), request_timeout
        )
