"""Fetching message images the way LINE does.

LINE's servers fetch `originalContentUrl`, `previewImageUrl` and Flex image `url`s from the
bot's HTTPS server. For Kairan that server is the appliance, reached through the relay: the
relay forwards TLS unopened into the same ssh tunnel and unix socket as the webhook. The
simulator therefore fetches image URLs the same way: a blind TCP relay on loopback pipes bytes
into the webhook target's unix socket, and TLS (verified against the target's CA file, with the
URL's host name for SNI and `Host`) ends on the appliance behind it.

Unlike LINE (which would accept the request and show residents a broken picture), the simulator
refuses a request whose image it cannot fetch with 400, naming the message and the reason, so
that a delivery with an unreachable image fails visibly in training and in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.abc

from kairand.simulator.webhook import WebhookTarget

MAX_ORIGINAL_BYTES = 10 * 1024 * 1024
MAX_PREVIEW_BYTES = 1024 * 1024
IMAGE_TYPES = ("image/jpeg", "image/png")
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_urls(messages: Any) -> Iterator[tuple[str, str, int]]:
    """(property path, url, byte limit) of every image LINE would fetch in MESSAGES."""
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        where = f"messages[{i}]"
        if message.get("type") == "image":
            for key, limit in (
                ("originalContentUrl", MAX_ORIGINAL_BYTES),
                ("previewImageUrl", MAX_PREVIEW_BYTES),
            ):
                url = message.get(key)
                if isinstance(url, str):
                    yield f"{where}.{key}", url, limit
        elif message.get("type") == "flex":
            yield from _flex_images(message.get("contents"), f"{where}.contents")


def _flex_images(node: Any, where: str) -> Iterator[tuple[str, str, int]]:
    if isinstance(node, dict):
        if node.get("type") == "image" and isinstance(node.get("url"), str):
            yield f"{where}.url", node["url"], MAX_ORIGINAL_BYTES
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from _flex_images(value, f"{where}.{key}")
    elif isinstance(node, list):
        for j, value in enumerate(node):
            yield from _flex_images(value, f"{where}[{j}]")


class BlindRelay:
    """A TCP passthrough into a unix socket: what the relay host plus the ssh tunnel do for the
    appliance (TLS is not opened here; it ends behind the socket, on the appliance)."""

    def __init__(self, unix_socket: str) -> None:
        self.unix_socket = unix_socket
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.unix_socket)
        except OSError:
            writer.close()
            return
        tasks = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(tasks)
        for task in tasks:
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


class _RelayResolver(aiohttp.abc.AbstractResolver):
    """Every host name resolves to the relay (as the relay's DNS name does at LINE)."""

    def __init__(self, relay: BlindRelay) -> None:
        self.relay = relay

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.relay.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def relay_session(relay: BlindRelay, timeout_s: float = 5.0) -> aiohttp.ClientSession:
    """A client whose every https:// request goes through RELAY (TLS to the appliance)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=_RelayResolver(relay), use_dns_cache=False),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


@dataclass
class ImageFetcher:
    """Fetches through TARGET's connection; successes are cached for `cache_s` seconds of the
    platform clock (LINE fetches once, not once per recipient batch)."""

    target: WebhookTarget | None
    timeout_s: float = 5.0
    cache_s: float = 300.0
    fetched: list[tuple[str, int]] = field(default_factory=list)
    """(url, HTTP status or 0 for a network error) of every fetch, in order."""
    _ok: dict[str, float] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _ssl: Any = True
    _relay: BlindRelay | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.target is not None:
                # Reads the CA file: off the event loop, once.
                self._ssl = await asyncio.to_thread(self.target.ssl_context) or True
            if self.target is not None and self.target.unix_socket:
                self._relay = BlindRelay(self.target.unix_socket)
                await self._relay.start()
                self._session = relay_session(self._relay, self.timeout_s)
            else:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s)
                )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._relay is not None:
            await self._relay.close()
            self._relay = None

    async def check(self, url: str, limit: int, now: float) -> str | None:
        """None when LINE could use the image at URL; otherwise why not (English, like LINE)."""
        if not url.startswith("https://"):
            return "The image URL must use HTTPS"
        if len(url) > 2000:
            return "Length must be between 0 and 2000"
        cached = self._ok.get(url)
        if cached is not None and now - cached < self.cache_s:
            return None
        session = await self._client()
        ssl = self._ssl
        try:
            async with session.get(url, ssl=ssl, allow_redirects=False) as resp:
                self.fetched.append((url, resp.status))
                if resp.status != 200:
                    return f"Failed to fetch the image (HTTP {resp.status})"
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype not in IMAGE_TYPES:
                    return f"The image must be JPEG or PNG (got {ctype or 'no type'})"
                data = await resp.content.read(limit + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.fetched.append((url, 0))
            return f"Failed to fetch the image ({type(exc).__name__})"
        if len(data) > limit:
            return f"The image is larger than {limit} bytes"
        if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
            return "The image is not a JPEG or PNG file"
        self._ok[url] = now
        if len(self._ok) > 4096:
            with contextlib.suppress(StopIteration):
                self._ok.pop(next(iter(self._ok)))
        return None
