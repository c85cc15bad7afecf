"""The booking confirmation (W1): the reply carries the booking number and what to
bring; when that reply cannot be made (its token expired, LINE refused it), the confirmation
is pushed instead by the reservation notice worker, with a retry key stored before the push
(a restart never sends it twice), and only then."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from kairand.config import Config
from kairand.keys import secrets as keys
from kairand.line import inbox as worker
from kairand.line.client import line_api
from kairand.reservations import notices, service
from kairand.reservations.model import Catalogue
from kairand.store import inbox
from kairand.store import reservations as rstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store
from tests.unit.reservations.test_chat_booking import NOW, SERVICE, Chat, tap_label


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    s.write_sync(service.save_catalogue, Catalogue(services=(SERVICE,)), "test", int(NOW))
    yield s
    s.close()


class CapturingChat(Chat):
    """Chat that also keeps the inbox's PendingReply objects (with their confirmation)."""

    def _send(self, event: dict[str, Any], now: float = NOW) -> list[dict[str, Any]]:
        self.ts += 1
        body = {
            "mode": "active",
            "timestamp": self.ts,
            "source": {"type": "user", "userId": self.user},
            "webhookEventId": secrets.token_hex(13),
            "deliveryContext": {"isRedelivery": False},
            "replyToken": secrets.token_hex(16),
            **event,
        }
        row = inbox.IncomingEvent(
            body["webhookEventId"], self.user, body["type"], self.ts, json.dumps(body)
        )
        self.store.write_sync(inbox.insert_events, [row], now)
        result = self.store.write_sync(worker.process_batch, 10, now, self.keys, False)
        assert result.failed == 0
        self.pending = list(result.replies)
        return [m for r in result.replies for m in r.messages]


@dataclasses.dataclass
class Line:
    """Replies answered with REPLY_STATUS; pushes recorded with their retry key."""

    reply_status: int = 200
    replies: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pushes: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    url: str = ""

    async def reply(self, request: web.Request) -> web.Response:
        self.replies.append(await request.json())
        if self.reply_status != 200:
            return web.json_response({"message": "Invalid reply token"}, status=400)
        return web.json_response({"sentMessages": [{"id": "1", "quoteToken": "q"}]})

    async def push(self, request: web.Request) -> web.Response:
        self.pushes.append((request.headers["X-Line-Retry-Key"], await request.json()))
        return web.json_response({"sentMessages": [{"id": "2", "quoteToken": "q"}]})


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    stand_in = Line()
    app = web.Application()
    app.router.add_post("/v2/bot/message/reply", stand_in.reply)
    app.router.add_post("/v2/bot/message/push", stand_in.push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield stand_in
    await runner.cleanup()


def _confirmation_reply(store: Store) -> worker.PendingReply:
    """A resident books up to 予約する; the reply of that last step as the inbox made it."""
    chat = CapturingChat(store)
    out = chat.say("予約")
    out = tap_label(chat, out, "9月24日(木)")
    out = tap_label(chat, out, "10:00")
    chat.say("すいた　はなこ")
    out = chat.say("０９０－１２３４－５６７８")
    tap_label(chat, out, "予約する")
    [reply] = chat.pending
    return reply


def _notices(conn: Connection) -> list[tuple[str, str, str]]:
    return [
        (str(k), str(s), str(r))
        for k, s, r in conn.execute("SELECT kind, state, retry_key FROM reservation_notices")
    ]


async def _send(store: Store, line: Line, reply: worker.PendingReply) -> asyncio.Event:
    """Hand REPLY to the inbox worker's reply sender (with its confirmation hook); settle."""
    woken = asyncio.Event()
    purge_keys = await asyncio.to_thread(
        lambda: worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
    )
    async with line_api(line.url, "token") as api:
        inbox_worker = worker.InboxWorker(
            store, api, purge_keys, asyncio.Event(), notice_wake=woken.set
        )
        assert inbox_worker.replies is not None
        inbox_worker.replies.submit(reply)
        await inbox_worker.settle()
    return woken


@pytest.mark.req("W1")
@pytest.mark.parametrize("failure", ["expired", "refused"])
async def test_a_confirmation_that_cannot_be_replied_is_pushed_once_with_a_stored_key(
    store: Store,
    line: Line,
    failure: str,
) -> None:
    reply = await asyncio.to_thread(_confirmation_reply, store)
    assert reply.confirmation is not None and reply.confirmation[1] == "confirm"
    if failure == "refused":
        line.reply_status = 400
        reply = dataclasses.replace(reply, deadline=math.inf)
    # (expired: the event was received at NOW, long before this test's clock.)
    woken = await _send(store, line, reply)
    assert woken.is_set()  # the notice worker is woken, not left to its next tick
    assert line.pushes == []  # the inbox does not push it itself
    [(kind, state, key)] = await store.read(_notices)
    assert (kind, state) == ("confirm", "pending") and len(key) == 36
    async with line_api(line.url, "token") as api:
        assert await notices.run_once(store, api, int(NOW)) == {"sent": 1}
        assert await notices.run_once(store, api, int(NOW) + 60) == {}
    [(pushed_key, body)] = line.pushes
    assert pushed_key == key  # the stored key: a retry after a crash reuses it
    text = body["messages"][0]["text"]
    assert "予約を受け付けました" in text and "予約番号：000001" in text
    assert "お持ちいただくもの" in text and "9月24日(木) 10:00" in text
    assert "スイタ" not in text and "090" not in text  # nothing of the contact in a push
    assert await store.read(rstore.notice_states) == {("confirm", "sent"): 1}


@pytest.mark.req("W1")
async def test_a_confirmation_replied_in_time_is_not_pushed(
    store: Store,
    line: Line,
) -> None:
    reply = await asyncio.to_thread(_confirmation_reply, store)
    reply = dataclasses.replace(reply, deadline=math.inf)
    woken = await _send(store, line, reply)
    assert "予約番号：000001" in line.replies[0]["messages"][0]["text"]
    assert not woken.is_set() and await store.read(_notices) == []
    async with line_api(line.url, "token") as api:
        assert await notices.run_once(store, api, int(NOW)) == {}
    assert line.pushes == []
