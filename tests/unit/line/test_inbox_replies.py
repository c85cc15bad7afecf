"""The inbox worker's replies under a slow LINE: no head-of-line blocking, each resident's
replies in order, and the reply token's lifetime respected."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from kairand.config import Config
from kairand.conversation import texts
from kairand.keys import secrets as keys
from kairand.line import inbox as worker
from kairand.line import replies as replies_module
from kairand.line.client import line_api
from kairand.store import inbox, metrics, residents
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store

pytestmark = pytest.mark.req("N1")


async def _true(value: bool) -> bool:
    return value


async def _none_pending(store: Store) -> bool:
    return await store.read(inbox.count_pending) == 0


def _user() -> str:
    return "U" + secrets.token_hex(16)


def _event(kind: str, user: str, **extra: Any) -> inbox.IncomingEvent:
    ts = int(time.time() * 1000)
    body = {
        "type": kind,
        "mode": "active",
        "timestamp": ts,
        "source": {"type": "user", "userId": user},
        "webhookEventId": secrets.token_hex(13),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": secrets.token_hex(16),
        **extra,
    }
    return inbox.IncomingEvent(body["webhookEventId"], user, kind, ts, json.dumps(body))


def _token(event: inbox.IncomingEvent) -> str:
    return str(json.loads(event.body)["replyToken"])


@dataclass
class SlowLine:
    """A Messaging API stand-in whose reply latency is chosen per reply token."""

    delays: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    """Reply tokens answered 400 (as LINE answers an invalid or used token)."""
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    async def reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        token = body["replyToken"]
        self.headers.append(dict(request.headers))
        if token in self.refuse:
            return web.json_response({"message": "Invalid reply token"}, status=400)
        self.arrived[token] = time.monotonic()
        await asyncio.sleep(self.delays.get(token, 0.0))
        self.answered[token] = time.monotonic()
        return web.json_response({"sentMessages": [{"id": "1", "quoteToken": "q"}]})

    async def push(self, request: web.Request) -> web.Response:
        self.pushes.append(await request.json())
        return web.json_response({"sentMessages": [{"id": "2", "quoteToken": "q"}]})

    async def wait_answered(self, token: str, within: float) -> float:
        await until(lambda: _true(token in self.answered), within)
        return self.answered[token]


async def until(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait (polling) until CONDITION holds; fail after WITHIN seconds."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.01)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    yield s
    s.close()


@pytest.fixture
async def slow_line() -> AsyncIterator[SlowLine]:
    line = SlowLine()
    app = web.Application()
    app.router.add_post("/v2/bot/message/reply", line.reply)
    app.router.add_post("/v2/bot/message/push", line.push)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    line.port = runner.addresses[0][1]
    yield line
    await runner.cleanup()


@pytest.fixture
async def running(
    store: Store, slow_line: SlowLine, request: pytest.FixtureRequest
) -> AsyncIterator[worker.InboxWorker]:
    lifetime = getattr(request, "param", 50.0)
    purge_keys = await asyncio.to_thread(
        lambda: worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
    )
    async with line_api(f"http://127.0.0.1:{slow_line.port}", "token", 30.0) as line:
        inbox_worker = worker.InboxWorker(
            store, line, purge_keys, asyncio.Event(), reply_lifetime=lifetime
        )
        task = asyncio.create_task(inbox_worker.run())
        try:
            yield inbox_worker
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _add(
    store: Store, inbox_worker: worker.InboxWorker, *events: inbox.IncomingEvent
) -> None:
    await store.write(inbox.insert_events, list(events), time.time())
    inbox_worker.wake.set()


async def test_a_slow_reply_does_not_delay_other_residents(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker
) -> None:
    """While one resident's reply hangs at LINE (20 s), another resident who writes afterwards
    gets their reply at once: the worker does not wait for a batch's replies before taking the
    next events (it once did: with 2 s latency the next batch sat idle ~25 s)."""
    slow = _event("follow", _user())
    slow_line.delays[_token(slow)] = 20.0
    await _add(store, running, slow)
    await until(lambda: _true(_token(slow) in slow_line.arrived))
    fast = _event("follow", _user())
    started = time.monotonic()
    await _add(store, running, fast)
    answered = await slow_line.wait_answered(_token(fast), within=5.0)
    assert answered - started < 3.0
    assert _token(slow) not in slow_line.answered  # still hanging at LINE


async def test_one_residents_replies_go_out_in_order(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker
) -> None:
    """A resident's second reply is requested only after their first one was answered, even
    when the first is slow; other residents are not held by it."""
    uid = _user()
    first = _event("follow", uid)
    second = _event("message", uid, message={"type": "text", "id": "1", "text": "こんにちは"})
    other = _event("follow", _user())
    slow_line.delays[_token(first)] = 0.8
    await _add(store, running, first, second, other)
    await slow_line.wait_answered(_token(second), within=10.0)
    assert slow_line.arrived[_token(second)] >= slow_line.answered[_token(first)]
    assert slow_line.answered[_token(other)] < slow_line.answered[_token(first)]


def _registered(conn: Connection, user: str, now: int) -> None:
    resident_id = residents.start(conn, user, now)
    residents.set_consent(conn, resident_id, 1, now)
    residents.set_conversation(conn, resident_id, {"step": "done"}, 1, now)
    residents.mark_registered(conn, resident_id, now)


def _count(conn: Connection, metric: str) -> int:
    today = metrics.day_of(time.time())
    return sum(metrics.series(conn, metric, today, today).values())


@pytest.mark.parametrize("running", [0.6], indirect=True)
async def test_replies_are_bounded_by_the_token_lifetime_and_must_know_is_pushed(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker
) -> None:
    """A reply still hanging when its token's lifetime (0.6 s here) runs out is cut off; the
    store effects are kept; the resident who stopped deliveries is told by a push (they must
    know), the one who only followed is not; both are counted."""
    stopper, follower = _user(), _user()
    await store.write(_registered, stopper, int(time.time()))
    stop = _event("postback", stopper, postback={"data": "a=stop"})
    follow = _event("follow", follower)
    slow_line.delays[_token(stop)] = 10.0
    slow_line.delays[_token(follow)] = 10.0
    started = time.monotonic()
    await _add(store, running, stop, follow)
    await until(lambda: _true(bool(slow_line.pushes)))
    await running.settle()
    assert time.monotonic() - started < 5.0  # cut at the token's deadline, not LINE's 10 s
    assert [p["to"] for p in slow_line.pushes] == [stopper]
    assert slow_line.pushes[0]["messages"][0]["text"] == texts.STOPPED
    assert "quickReply" not in slow_line.pushes[0]["messages"][0]
    flags = await store.read(residents.flags_of, stopper)
    assert flags is not None and flags["deliveries_stopped"] is True
    assert await store.read(_count, "reply_expired") == 2
    assert await store.read(_count, "reply_notice_pushed") == 1


async def test_a_reply_whose_token_already_expired_is_not_attempted(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker
) -> None:
    """An event received longer ago than the token's lifetime (a backlog) gets no reply
    request at all — LINE would refuse it — and is counted; its effects are applied."""
    late = _event("follow", _user())
    await store.write(inbox.insert_events, [late], time.time() - 120)
    running.wake.set()
    await until(lambda: _none_pending(store))
    await running.settle()
    assert _token(late) not in slow_line.arrived
    assert await store.read(_count, "reply_expired") == 1
    assert await store.read(residents.flags_of, late.line_user_id or "") is not None


async def test_a_refused_reply_is_counted_and_must_know_is_pushed(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker
) -> None:
    """Replies go out without the SDK's model layer (kairand.line.client.reply_json) but with
    its Bearer token and JSON body; LINE's 400 is a failed reply (counted, never retried) and
    what the resident must know is pushed instead."""
    stopper = _user()
    await store.write(_registered, stopper, int(time.time()))
    stop = _event("postback", stopper, postback={"data": "a=stop"})
    slow_line.refuse.add(_token(stop))
    await _add(store, running, stop)
    await until(lambda: _true(bool(slow_line.pushes)))
    await running.settle()
    assert slow_line.headers[0]["Authorization"] == "Bearer token"
    assert slow_line.headers[0]["Content-Type"] == "application/json"
    assert [p["to"] for p in slow_line.pushes] == [stopper]
    assert slow_line.pushes[0]["messages"][0]["text"] == texts.STOPPED
    assert await store.read(_count, "reply_failed") == 1
    assert await store.read(_count, "reply_notice_pushed") == 1


async def test_failed_replies_are_logged_at_most_once_a_second_and_all_counted(
    store: Store, slow_line: SlowLine, running: worker.InboxWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When LINE refuses every reply of a busy second, the journal gets one line saying how
    many failed (a line per reply took a tenth of the event loop at 1,000 events/s); the
    counters still count each one."""
    lines: list[dict[str, Any]] = []
    monkeypatch.setattr(
        replies_module.log, "warning", lambda event, **kw: lines.append({"event": event, **kw})
    )
    users = [_user() for _ in range(20)]
    events = [_event("follow", u) for u in users]
    slow_line.refuse.update(_token(e) for e in events)
    for event in events:
        await _add(store, running, event)
    await until(lambda: _none_pending(store))
    await running.settle()
    failed = [line for line in lines if line["event"] == "inbox.reply_failed"]
    assert 1 <= len(failed) <= 3 and sum(line["failures"] for line in failed) <= 20
    assert await store.read(_count, "reply_failed") == 20


async def test_a_burst_of_replies_starts_a_few_per_loop_turn(slow_line: SlowLine) -> None:
    """A committed batch hands over its replies at once; they start REPLY_STARTS_PER_TURN per
    turn of the event loop, so a webhook answer or a staff API call waits for a few of them,
    not for the burst; every reply still goes out, one resident's in order."""
    async with line_api(f"http://127.0.0.1:{slow_line.port}", "token", 30.0) as line:
        sender = replies_module.ReplySender(line)
        text = ({"type": "text", "text": "ようこそ"},)
        burst = [replies_module.PendingReply(f"b{i}", text, user_id=_user()) for i in range(80)]
        one = _user()
        ordered = [replies_module.PendingReply(f"o{i}", text, user_id=one) for i in range(3)]
        for reply in [*burst, *ordered]:
            slow_line.delays[reply.reply_token] = 0.3  # none settles during the first turns
            sender.submit(reply)
        assert sender.pending == 83
        seen = 0
        for _ in range(3):
            await asyncio.sleep(0)  # one turn of the loop
            assert sender.stats.in_flight - seen <= replies_module.REPLY_STARTS_PER_TURN
            seen = sender.stats.in_flight
        assert 0 < seen < 80
        await sender.drain()
        assert sender.stats.sent == 83 and sender.pending == 0
        arrived = [slow_line.arrived[r.reply_token] for r in ordered]
        answered = [slow_line.answered[r.reply_token] for r in ordered]
        assert arrived[1] >= answered[0] and arrived[2] >= answered[1]
