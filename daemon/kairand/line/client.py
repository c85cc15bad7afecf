"""The one place that builds line-bot-sdk clients (real LINE or the simulator)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
)
from linebot.v3.messaging.async_rest import RESTResponse
from yarl import URL

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
    # HTTPS_PROXY / NO_PROXY (docs/appliance.md), read once here rather than per request.
    with contextlib.suppress(LookupError):
        proxy, auth = get_env_proxy_for_url(URL(configuration.host))
        configuration.proxy = str(proxy.with_user(None))
        if auth is not None:
            configuration.proxy_headers = {"Proxy-Authorization": auth.encode()}
    return configuration


def _ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """As the SDK's own RESTClientObject builds it."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _without_per_request_env(client: AsyncApiClient, configuration: Configuration) -> None:
    """The SDK opens its HTTP session with trust_env=True: aiohttp then looks up ~/.netrc and
    the proxy variables in a worker thread on every request (a third of the CPU of a reply in
    the booking rush, bench/reservations.py). The proxy is resolved once in _configuration;
    the session is replaced by the same one without those per-request lookups."""
    rest = client.rest_client
    context = await asyncio.to_thread(_ssl_context, configuration)
    previous = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=configuration.connection_pool_maxsize, ssl=context),
        trust_env=False,
    )
    await previous.close()


async def reply_json(api: LineApi, body: dict[str, Any], request_timeout: float) -> None:
    """POST /v2/bot/message/reply with a body already in the API's JSON form.

    The hottest call of the daemon (one per resident event; the booking rush makes hundreds a
    second). It uses the SDK's own HTTP session, host, proxy and default headers (Bearer token,
    User-Agent) and raises the SDK's ApiException on a refusal, like reply_message; but it skips
    the SDK's model layer (ReplyMessageRequest.from_dict, then to_dict per nested model, then a
    recursive sanitize of the result), the largest share of the daemon's CPU in the booking
    rush (bench/reservations.py --quick: with the per-request env lookups above, 1.4-1.7 ms of
    CPU per event before, 0.7-0.9 ms after). Bodies are built by kairand's tested dialogue
    code, and LINE (like the simulator) answers a malformed one with 400: an ApiException, as
    before."""
    client = api.messaging.api_client
    rest = client.rest_client
    headers = {
        **client.default_headers,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    async with rest.pool_manager.post(
        client.configuration.host + "/v2/bot/message/reply",
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=request_timeout),
        proxy=rest.proxy,
        proxy_headers=rest.proxy_headers,
    ) as response:
        payload = await response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=RESTResponse(response, payload))


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
    # Reading the proxy variables may read ~/.netrc: off the event loop.
    messaging = await asyncio.to_thread(_configuration, api_base, access_token, connections)
    data = await asyncio.to_thread(_configuration, data_base, access_token, MAX_DATA_CONNECTIONS)
    async with AsyncApiClient(messaging) as client, AsyncApiClient(data) as data_client:
        await _without_per_request_env(client, messaging)
        await _without_per_request_env(data_client, data)
        yield LineApi(
            AsyncMessagingApi(client), AsyncMessagingApiBlob(data_client), request_timeout
        )
