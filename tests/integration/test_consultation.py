"""G6: a resident who writes a consultation into the chat is told at once that the account
cannot answer it, with the municipality's contacts and the national hotlines from the
configuration; the message is stored nowhere (decrypted page scan) and only counted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kairand.keys import secrets as keys
from kairand.store import metrics
from kairand.store.bootstrap import open_store
from tests.support.line_fakes import (
    InProcessDaemon,
    LineStandIn,
    event,
    setup_dev,
    user_id,
)
from tests.support.ports import free_port
from tests.support.retention_support import decrypted_pages

CONTACTS = "奈良市役所 市民相談課　0742-00-0000（平日 8:30〜17:15）"
EXTRA = f"""
[consultation]
contacts = "{CONTACTS}"
hotlines = [
  "児童相談所虐待対応ダイヤル　189",
  "子ども医療電話相談　#8000",
  "消費者ホットライン　188",
]
"""
MESSAGE = "隣の家から毎晩子どもの泣き声が聞こえて心配です。相談できますか"


@pytest.mark.req("G6")
async def test_a_consultation_gets_the_configured_contacts_and_is_not_stored(
    short_tmp: Path,
) -> None:
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    _, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", port, extra=EXTRA)
    store = await asyncio.to_thread(open_store, config)
    key = await asyncio.to_thread(keys.db_key)
    uid = user_id()
    try:
        async with InProcessDaemon(config, store) as daemon:
            follow = event("follow", uid, 1000)
            await daemon.post([follow])
            await asyncio.wait_for(line.wait_reply(follow["replyToken"]), 10)
            for i in range(2):
                message = event("message", uid, 2000 + i, text=MESSAGE)
                await daemon.post([message])
                reply = await asyncio.wait_for(line.wait_reply(message["replyToken"]), 10)
                text = reply[0]["text"]
                assert "お答えすることができません" in text
                assert CONTACTS in text
                assert "189" in text and "#8000" in text and "188" in text
                assert "保存しておらず" in text
                assert MESSAGE not in repr(reply)
            # A stranger (no record) gets the same reply.
            other = event("message", user_id(), 3000, text=MESSAGE)
            await daemon.post([other])
            reply = await asyncio.wait_for(line.wait_reply(other["replyToken"]), 10)
            assert CONTACTS in reply[0]["text"]
            await daemon.settle()
            today = metrics.day_of(time.time())
            assert await store.read(metrics.series, "unanswered_message", today, today) == {
                today: 3
            }
            await store.acheckpoint()
            plain = await asyncio.to_thread(decrypted_pages, key, store.path)
            assert uid.encode() in plain  # positive control: the scan sees stored text
            assert MESSAGE.encode() not in plain
            assert MESSAGE[:8].encode() not in plain
    finally:
        await asyncio.to_thread(store.close)
        await line.stop()
