"""The 子ども安全情報 dialogue through the real daemon (signed webhooks → inbox → program
dialogue → store, replies through the reply API): a city resident joins the program with its
own consent, chooses districts in two steps, leaves it without leaving the city information
(with a deletion receipt), and an unfollow removes everything."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kairand.programs import catalogue, service
from kairand.store import programs as program_store
from kairand.store import receipts, residents
from kairand.store.bootstrap import open_store
from tests.integration.test_onboarding import make_resident
from tests.support.line_fakes import InProcessDaemon, LineStandIn, event, setup_dev
from tests.support.ports import free_port


@pytest.fixture
async def world(short_tmp: Path) -> AsyncIterator[tuple[InProcessDaemon, LineStandIn]]:
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    _, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", port)
    store = await asyncio.to_thread(open_store, config)
    try:
        await service.put_program(
            store, "admin", catalogue.CHILD_SAFETY_CODE, catalogue.child_safety()
        )
        await service.import_districts(store, "admin", catalogue.DEMO_DISTRICTS_CSV)
        async with InProcessDaemon(config, store) as daemon:
            yield daemon, line
    finally:
        await asyncio.to_thread(store.close)
        await line.stop()


@pytest.mark.req("K1")
@pytest.mark.req("S8")
async def test_join_choose_leave_keeps_city(world: tuple[InProcessDaemon, LineStandIn]) -> None:
    daemon, line = world
    from tests.integration.test_onboarding import drive

    resident = make_resident(random.Random(3))
    resident.chats = False
    resident.declines_first = False
    await drive(daemon, line, [resident])  # registered for the city information first
    uid = resident.uid
    store = daemon.store
    city_before = await store.read(residents.answers_of, uid)
    ts = [10**13]

    async def send(ev: dict[str, Any]) -> list[dict[str, Any]]:
        await daemon.post([ev])
        return await asyncio.wait_for(line.wait_reply(ev["replyToken"]), 10)

    def tap(messages: list[dict[str, Any]], label: str) -> dict[str, Any]:
        ts[0] += 1
        action = next(
            i["action"]
            for i in messages[-1]["quickReply"]["items"]
            if i["action"]["label"] == label
        )
        return event("postback", uid, ts[0], data=action["data"])

    ts[0] += 1
    offer = await send(event("message", uid, ts[0], text="子ども安全情報"))
    assert "利用目的" in offer[0]["text"]
    jh = await send(tap(offer, "同意して登録する"))
    el = await send(tap(jh, "東中学校区"))
    el = await send(tap(el, "光小学校区"))
    jh = await send(tap(el, "他の中学校区も選ぶ"))
    el = await send(tap(jh, "西中学校区"))
    el = await send(tap(el, "港小学校区"))
    asked = await send(tap(el, "選択を完了"))
    assert "学校区（2件）を受け付けました" in asked[0]["text"]
    assert "【質問 2/2】" in asked[0]["text"]
    done = await send(tap(asked, "地域の方"))
    assert "登録した学校区は2件です" in done[0]["text"]  # counted, not named (S10)
    rid = (
        await store.read(
            lambda c: c.execute(
                "SELECT id FROM residents WHERE line_user_id = ?", (uid,)
            ).fetchone()
        )
    )[0]
    member = await store.read(program_store.member, catalogue.CHILD_SAFETY_CODE, rid)
    assert member is not None and member.registered_at is not None
    answers = await store.read(residents.answers_of, uid)
    assert answers[catalogue.DISTRICT_QUESTION] == [("hikari", None), ("minato", None)]
    assert answers[catalogue.RELATION_QUESTION] == [("neighbour", None)]

    # Change the program's own answer from its menu: stored, nothing else asked.
    ts[0] += 1
    menu = await send(event("message", uid, ts[0], text="子ども安全情報"))
    ask = await send(tap(menu, "登録の区分を変更"))
    changed = await send(tap(ask, "保護者"))
    assert "「登録の区分」の回答を変更しました" in changed[0]["text"]
    answers = await store.read(residents.answers_of, uid)
    assert answers[catalogue.RELATION_QUESTION] == [("guardian", None)]
    assert answers[catalogue.DISTRICT_QUESTION] == [("hikari", None), ("minato", None)]

    # Leave the program: its data goes with a receipt; the city registration stays.
    ts[0] += 1
    menu = await send(event("message", uid, ts[0], text="子ども安全情報"))
    ask = await send(tap(menu, "登録をやめる"))
    left = await send(tap(ask, "登録をやめる"))
    assert "市政情報の受け取りは変わりません" in left[0]["text"]
    assert await store.read(program_store.member, catalogue.CHILD_SAFETY_CODE, rid) is None
    after = await store.read(residents.answers_of, uid)
    assert catalogue.DISTRICT_QUESTION not in after
    assert after == city_before
    assert (await store.read(residents.flags_of, uid))["registered"] is True
    made = await store.read(receipts.between, 0, 2**62)
    assert [(r.reason, r.deleted.get("program")) for r in made] == [("request", "kodomo")]

    # Join again, then block: the unfollow purge takes the program registration with it.
    ts[0] += 1
    offer = await send(event("message", uid, ts[0], text="子ども安全情報"))
    jh = await send(tap(offer, "同意して登録する"))
    el = await send(tap(jh, "北中学校区"))
    el = await send(tap(el, "北小学校区"))
    asked = await send(tap(el, "選択を完了"))
    await send(tap(asked, "回答しない"))
    ts[0] += 1
    await daemon.post([event("unfollow", uid, ts[0])])

    async def gone() -> bool:
        return await store.read(residents.flags_of, uid) is None

    for _ in range(200):
        if await gone():
            break
        await asyncio.sleep(0.05)
    assert await gone()
    count = await store.read(
        lambda c: c.execute("SELECT count(*) FROM program_members").fetchone()[0]
    )
    assert count == 0


async def test_the_daemon_shares_one_sender_wake_up_with_the_api(
    world: tuple[InProcessDaemon, LineStandIn],
) -> None:
    """The wiring behind tests/unit/api/test_sender_wake.py: the running daemon's sender waits
    on the event the API app sets (kairand.runtime.DELIVERY_WAKE)."""
    from kairand.delivery.worker import SENDER
    from kairand.runtime import DELIVERY_WAKE

    daemon, _ = world
    assert daemon.app is not None
    assert daemon.app[SENDER].wake is daemon.app[DELIVERY_WAKE]
