"""The queue in LINE (W2) through the real inbox transaction and SQLCipher store: take a ticket,
see the position with the estimate, cancel, tie a kiosk ticket by its QR message; and the
pushes (near, called) against the LINE simulator: delivered once each, even when the answer is
lost and the worker restarts with a fresh store handle."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest

from kairand.config import Config, QueueSection, QueueServiceSection
from kairand.keys import secrets as keys
from kairand.line import inbox as worker
from kairand.line.client import line_api
from kairand.queue import core, pushes, service
from kairand.simulator.faults import FaultProfile
from kairand.simulator.simulator import Simulator, SimulatorConfig
from kairand.store import inbox
from kairand.store import queue as qstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Store
from kairand.timeutil import JST

NOW = dt.datetime(2026, 10, 1, 10, 0, tzinfo=JST).timestamp()
QUEUE = QueueSection(
    services=(
        QueueServiceSection(
            code="hoiku",
            prefix="A",
            name="保育所等利用申込",
            counters=(3,),
            default_service_minutes=5,
        ),
        QueueServiceSection(code="juminhyo", prefix="B", name="住民票", counters=(4,)),
    ),
    notify_when_ahead=1,
    line_basic_id="@kairan",
)


class Chat:
    def __init__(self, store: Store, user: str | None = None) -> None:
        self.store = store
        self.user = user or "U" + secrets.token_hex(16)
        self.keys = worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
        self.ts = 0

    def _send(self, event: dict[str, Any], now: float) -> list[dict[str, Any]]:
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
        result = self.store.write_sync(worker.process_batch, 10, now, self.keys, False, QUEUE)
        assert result.failed == 0
        return [m for r in result.replies for m in r.messages]

    def say(self, text: str, now: float = NOW) -> str:
        return "\n".join(
            m["text"]
            for m in self._send({"type": "message", "message": {"type": "text", "text": text}}, now)
        )

    def tap(self, data: str, now: float = NOW) -> str:
        return "\n".join(
            m["text"] for m in self._send({"type": "postback", "postback": {"data": data}}, now)
        )

    def buttons(self, text: str, now: float = NOW) -> list[dict[str, Any]]:
        messages = self._send({"type": "message", "message": {"type": "text", "text": text}}, now)
        return [i["action"] for m in messages for i in m.get("quickReply", {}).get("items", [])]


@pytest.mark.req("W2")
def test_take_a_ticket_see_position_and_cancel_in_the_chat(store: Store) -> None:
    first, second = Chat(store), Chat(store)
    choices = first.buttons("番号札を取る")
    assert [c["label"] for c in choices] == ["保育所等利用申込", "住民票"]
    reply = first.tap(choices[0]["data"])
    assert "番号札 A-001（保育所等利用申込）" in reply and "次にお呼びします" in reply
    reply = second.tap("que=take&s=hoiku", NOW + 1)
    assert "A-002" in reply and "あと1人・約5分" in reply
    # Taking a second ticket for the same service is refused politely (nothing issued).
    assert "すでに番号札 A-002" in second.tap("que=take&s=hoiku", NOW + 2)
    # The first resident is served for 15 minutes: the observed time replaces the default.
    t1 = store.write_sync(service.call_next, QUEUE, "hoiku", 3, NOW + 60)
    assert t1 is not None
    assert "3番窓口へお越しください" in first.say("順番を確認", NOW + 61)
    store.write_sync(service.act, QUEUE, t1.id, "serve", NOW + 70)
    store.write_sync(service.act, QUEUE, t1.id, "done", NOW + 70 + 900)
    third = Chat(store)
    assert "あと1人・約15分" in third.tap("que=take&s=hoiku", NOW + 1000)
    # Cancel asks first, then cancels; the next resident moves up.
    assert "取り消しますか" in second.say("番号札を取り消す", NOW + 1001)
    assert "A-002 を取り消しました" in second.tap("que=cancelok", NOW + 1002)
    assert "次にお呼びします" in third.say("順番を確認", NOW + 1003)
    assert "本日お取りの番号札はありません" in second.say("順番を確認", NOW + 1004)
    # Outside the opening hours nothing is issued.
    late = dt.datetime(2026, 10, 1, 18, 0, tzinfo=JST).timestamp()
    assert "受付時間は08:30〜17:15" in Chat(store).say("番号札を取る", late)


@pytest.mark.req("W2")
def test_kiosk_qr_message_ties_the_ticket_once(store: Store) -> None:
    issued = store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", NOW)
    assert issued.token is not None
    text = core.TOKEN_PREFIX + issued.token
    resident, stranger = Chat(store), Chat(store)
    reply = resident.say(text, NOW + 5)
    assert "紙の番号札をLINEと連携しました" in reply and "A-001" in reply
    assert "すでにLINEと連携" in stranger.say(text, NOW + 6)
    assert "使えません" in stranger.say(core.TOKEN_PREFIX + core.new_token(), NOW + 7)
    assert "A-001" in resident.say("順番を確認", NOW + 8)
    assert "本日お取りの番号札はありません" in stranger.say("順番を確認", NOW + 9)


@pytest.mark.req("W2")
async def test_pushes_once_each_across_a_lost_answer_and_a_restart(config: Config) -> None:
    store = await asyncio.to_thread(open_store, config)
    sim = Simulator(SimulatorConfig(seed=1, population=0, auto_react=False))
    async with sim:
        users = ["U" + secrets.token_hex(16) for _ in range(3)]
        for user in users:
            sim.platform.add_follower({"userId": user, "displayName": "住民"})
        chats = [await asyncio.to_thread(Chat, store, u) for u in users]
        for i, chat in enumerate(chats):
            await asyncio.to_thread(chat.tap, "que=take&s=hoiku", NOW + i)
        called = await store.write(service.call_next, QUEUE, "hoiku", 3, NOW + 100)
        assert called is not None and called.label == "A-001"
        async with line_api(sim.api_url, sim.config.access_token, 1.0) as line:
            # LINE accepts every push but the answers are lost: all stay pending.
            sim.platform.set_faults(FaultProfile(lost_ratio=1.0, seed=1))
            first = await pushes.run_once(store, QUEUE, line)
            assert first == {"retry": 3}
            assert len(sim.ledger) == 3
        await asyncio.to_thread(store.close)  # the daemon dies here
        sim.platform.set_faults(FaultProfile())
        store = await asyncio.to_thread(open_store, config)  # and starts again
        async with line_api(sim.api_url, sim.config.access_token, 1.0) as line:
            again = await pushes.run_once(store, QUEUE, line)
            assert again == {"sent": 3}
            assert await pushes.run_once(store, QUEUE, line) == {}
        # Exactly one push each: the call to A-001, "near" to A-002 and A-003 (<= 1 ahead).
        assert sim.ledger.recipients(kind="push") == {u: 1 for u in users}
        [call] = sim.ledger.for_user(users[0])
        assert call.texts == ("A-001番の方、3番窓口へお越しください。",)
        [near] = sim.ledger.for_user(users[1])
        assert near.texts[0].startswith("A-002番の方、まもなく順番です（あと0人）")
    assert await store.read(qstore.push_states) == {"sent": 3}
    await asyncio.to_thread(store.close)
