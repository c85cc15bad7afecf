"""The staff API socket holds nothing forever: header and body read timeouts,
a connection limit per peer, 415 for a body that is not declared JSON (S7)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from kairand.api.app import serve
from kairand.config import Config
from kairand.store.database import Store
from tests.support.api_helpers import HEADER, add_staff, count, header_resolver, with_api

pytestmark = pytest.mark.req("S7")

DRAFT = {
    "title": "健診のお知らせ",
    "confidentiality": 1,
    "messages": ["特定健診の受付を開始しました。"],
    "segment": {"conditions": [{"question": "area", "any_of": ["honmachi"]}]},
}


@asynccontextmanager
async def served(config: Config, store: Store, **api: object) -> AsyncIterator[Path]:
    add_staff(store)
    tight = with_api(config, **api)
    async with serve(tight, store, None, header_resolver):
        yield tight.api.socket


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection, which must happen within
    SECONDS (a server that holds the connection fails the test)."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def answer_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """One HTTP answer (head and Content-Length body), which must come within SECONDS."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head + await reader.readexactly(length)


def head(method: str, path: str, extra: str = "", user: str = "aut") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: kairan\r\n{HEADER}: {user}\r\n{extra}\r\n").encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict[str, object]:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


async def test_a_silent_connection_is_closed_after_the_header_timeout(
    config: Config, store: Store
) -> None:
    """A client that connects and sends nothing, or half a request line, is disconnected
    after api.header_timeout_seconds (it was held for ever)."""
    async with served(config, store, header_timeout_seconds=0.5) as socket:
        silent_reader, silent = await asyncio.open_unix_connection(str(socket))
        half_reader, half = await asyncio.open_unix_connection(str(socket))
        half.write(b"POST /v1/deliveries HTTP/1.1\r\nHost: kai")
        await half.drain()
        assert await closed_within(silent_reader, 5.0) == b""
        assert await closed_within(half_reader, 5.0) == b""
        silent.close()
        half.close()


async def test_a_declared_huge_body_is_refused_before_reading(config: Config, store: Store) -> None:
    """Content-Length: 1 GB with nothing sent: 413 at once, nothing read or stored."""
    async with served(config, store, header_timeout_seconds=5.0) as socket:
        reader, writer = await asyncio.open_unix_connection(str(socket))
        extra = "Content-Type: application/json\r\nContent-Length: 1000000000\r\n"
        writer.write(head("POST", "/v1/deliveries", extra))
        await writer.drain()
        answer = await answer_within(reader, 2.0)
        assert await closed_within(reader, 5.0) == b""  # and the connection is let go
        writer.close()
    assert status_of(answer) == 413
    assert count(store, "deliveries") == 0


async def test_a_body_that_stops_arriving_gets_408(config: Config, store: Store) -> None:
    """A body that starts and then stalls is answered 408 (Japanese detail) after
    api.body_timeout_seconds and the connection is closed; nothing is stored."""
    async with served(config, store, body_timeout_seconds=0.5) as socket:
        reader, writer = await asyncio.open_unix_connection(str(socket))
        extra = "Content-Type: application/json\r\nContent-Length: 2000\r\n"
        writer.write(head("POST", "/v1/deliveries", extra) + b'{"title": "')
        await writer.drain()
        answer = await answer_within(reader, 5.0)
        assert await closed_within(reader, 5.0) == b""
        writer.close()
    assert status_of(answer) == 408
    body = body_of(answer)
    assert body["type"] == "urn:kairan:problem:request-timeout" and "秒" in str(body["detail"])
    assert count(store, "deliveries") == 0


async def test_connections_per_peer_are_limited(config: Config, store: Store) -> None:
    """Beyond api.max_connections_per_peer open connections of one OS user, the next gets a
    503 problem in Japanese and is closed; when one closes, a new one is admitted."""
    async with served(
        config, store, max_connections_per_peer=3, header_timeout_seconds=30.0
    ) as socket:
        held = [await asyncio.open_unix_connection(str(socket)) for _ in range(3)]
        reader, writer = await asyncio.open_unix_connection(str(socket))
        answer = await closed_within(reader, 5.0)
        writer.close()
        assert status_of(answer) == 503
        body = body_of(answer)
        assert body["type"] == "urn:kairan:problem:too-many-connections"
        assert "同時接続" in str(body["detail"])
        held[0][1].close()
        await held[0][1].wait_closed()
        await asyncio.sleep(0)  # let the server see the close
        reader, writer = await asyncio.open_unix_connection(str(socket))
        writer.write(head("GET", "/v1/me", "Connection: close\r\n"))
        await writer.drain()
        assert status_of(await closed_within(reader, 5.0)) == 200
        writer.close()
        for _, w in held[1:]:
            w.close()


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"],
)
async def test_a_json_body_without_the_json_content_type_is_415(
    config: Config, store: Store, content_type: str | None
) -> None:
    """A POST whose body is not declared application/json gets 415 (docs/api.md), even when
    the body happens to be valid JSON; nothing is stored."""
    body = json.dumps(DRAFT).encode()
    extra = f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    if content_type is not None:
        extra += f"Content-Type: {content_type}\r\n"
    async with served(config, store) as socket:
        reader, writer = await asyncio.open_unix_connection(str(socket))
        writer.write(head("POST", "/v1/deliveries", extra) + body)
        await writer.drain()
        answer = await closed_within(reader, 5.0)
        writer.close()
    assert status_of(answer) == 415
    assert body_of(answer)["type"] == "urn:kairan:problem:unsupported-media-type"
    assert count(store, "deliveries") == 0


async def test_an_event_stream_is_not_cut_by_the_timers(config: Config, store: Store) -> None:
    """A request in progress (the event stream) outlives the header and idle timeouts."""
    async with served(
        config,
        store,
        header_timeout_seconds=0.3,
        idle_timeout_seconds=0.3,
        event_interval_seconds=0.1,
    ) as socket:
        reader, writer = await asyncio.open_unix_connection(str(socket))
        writer.write(head("GET", "/v1/events"))
        await writer.drain()
        async with asyncio.timeout(5):
            first = await reader.readuntil(b"\r\n\r\n")
        assert status_of(first) == 200
        await asyncio.sleep(1.0)  # three header/idle timeouts
        async with asyncio.timeout(5):
            more = await reader.read(100)
        assert more  # still streaming
        writer.close()
