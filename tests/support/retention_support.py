"""Helpers for the privacy-lifecycle tests: a LINE push stand-in, resident fixtures written
through the real store functions, and a byte scanner that decrypts every SQLCipher page.

Why decrypt: the store file is encrypted, so a plain byte scan of it could never find
plaintext — a test built on that could not fail. Instead `decrypted_pages` decrypts every page
of the main file and every frame of the -wal with the store's key, exactly as SQLCipher lays
them out (AES-256-CBC per page, IV in the page's reserved tail), including free pages and
stale page versions the b-tree no longer points to. A positive control in each test shows the
scanner finds the value before it is destroyed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kairand.store import residents
from kairand.store.database import Connection

JST = dt.timezone(dt.timedelta(hours=9))
PAGE_SIZE = 4096  # SQLCipher 4 default (cipher_page_size)
RESERVE = 80  # 16-byte IV + 64-byte HMAC-SHA512 at the end of every page
WAL_HEADER = 32
FRAME_HEADER = 24


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """kairanctl's main() installs its own root log handler (with a filter that rewrites
    record fields); put the root logger back so later tests see the logging they expect."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def t(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=JST).timestamp())


def _decrypt_page(key: bytes, page: bytes, first: bool) -> bytes:
    iv = page[PAGE_SIZE - RESERVE : PAGE_SIZE - RESERVE + 16]
    start = 16 if first else 0  # page 1 starts with the plaintext salt
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(page[start : PAGE_SIZE - RESERVE]) + decryptor.finalize()


def decrypted_pages(key: bytes, db_path: Path) -> bytes:
    """Every page of DB_PATH and every frame of its -wal, decrypted with KEY, concatenated."""
    out = bytearray()
    data = db_path.read_bytes() if db_path.exists() else b""
    for number in range(len(data) // PAGE_SIZE):
        page = _decrypt_page(key, data[number * PAGE_SIZE : (number + 1) * PAGE_SIZE], number == 0)
        if number == 0:
            # Sanity: the decrypted header must give the page size and reserve we assumed.
            assert int.from_bytes(page[0:2], "big") == PAGE_SIZE, "not decrypting correctly"
            assert page[4] == RESERVE
        out += page
    wal_path = db_path.with_name(db_path.name + "-wal")
    wal = wal_path.read_bytes() if wal_path.exists() else b""
    offset = WAL_HEADER
    while offset + FRAME_HEADER + PAGE_SIZE <= len(wal):
        page_number = int.from_bytes(wal[offset : offset + 4], "big")
        frame = wal[offset + FRAME_HEADER : offset + FRAME_HEADER + PAGE_SIZE]
        out += _decrypt_page(key, frame, page_number == 1)
        offset += FRAME_HEADER + PAGE_SIZE
    return bytes(out)


def occurrences(haystack: bytes, needles: list[str]) -> list[str]:
    return [n for n in needles if n.encode("utf-8") in haystack]


def add_resident(
    conn: Connection,
    line_user_id: str,
    *,
    followed: int,
    registered: int | None = None,
    answers: dict[str, list[str]] | None = None,
    answered: int | None = None,
    stopped: bool = False,
    display_name: str | None = None,
) -> int:
    """A resident written through the real store functions of the conversation."""
    resident_id = residents.start(conn, line_user_id, followed)
    for question, values in (answers or {}).items():
        rows = tuple((v, int(v) if v.isdigit() else None) for v in values)
        residents.replace_answer(
            conn, resident_id, question, rows, answered or registered or followed
        )
    if registered is not None:
        residents.mark_registered(conn, resident_id, registered)
        residents.touch(conn, resident_id, registered)
    if stopped:
        residents.set_deliveries_stopped(conn, resident_id, True)
    if display_name is not None:
        residents.set_display_name(conn, line_user_id, display_name)
    return resident_id


@dataclass
class PushStandIn:
    """A tiny stand-in for LINE's push endpoint that records what it was sent."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """HTTP statuses to answer with before answering 200 again (e.g. [500], [409])."""
    accepted_keys: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("X-Line-Retry-Key", "")
        self.received.append({"to": body["to"], "messages": body["messages"], "retry_key": key})
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status == 409:
                self.accepted_keys.add(key)
            return web.json_response({"message": "stand-in failure"}, status=status)
        if key in self.accepted_keys:
            return web.json_response({"message": "already accepted"}, status=409)
        self.accepted_keys.add(key)
        return web.json_response({"sentMessages": [{"id": "1", "quoteToken": "q"}]})

    def texts_to(self, line_user_id: str) -> list[str]:
        return [
            str(m["text"]) for r in self.received if r["to"] == line_user_id for m in r["messages"]
        ]


@asynccontextmanager
async def push_stand_in() -> AsyncIterator[PushStandIn]:
    stand_in = PushStandIn()
    app = web.Application()
    app.router.add_post("/v2/bot/message/push", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()
