"""テスト送信: push to the staff member's own test recipients only, marked as a test."""

from __future__ import annotations

import time

import pytest

from kairand.delivery import service
from kairand.delivery.errors import ConfidentialityRefused, NoTestRecipients
from kairand.delivery.model import TEST_NOTICE, DeliveryContent, Status
from kairand.line.client import line_api
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import audit as audit_store
from kairand.store import test_recipients
from kairand.store.database import Store
from tests.support.delivery_harness import IN_SEGMENT

STAFF_PHONE = "U" + "a" * 32
OTHER_PHONE = "U" + "b" * 32


def register(store: Store, staff: str, line_user_id: str) -> None:
    now = int(time.time())
    code = store.write_sync(test_recipients.new_code, staff, now)
    assert store.write_sync(test_recipients.claim, code, line_user_id, now) == staff


async def test_test_send_pushes_marked_draft_to_own_recipients_only(store: Store) -> None:
    """N4, S5: a draft (no approval) is pushed — never multicast — only to the requesting
    staff member's registered test recipients, after a 【テスト送信】 notice, and audited."""
    register(store, "tanaka", STAFF_PHONE)
    register(store, "suzuki", OTHER_PHONE)
    content = DeliveryContent(
        title="健診", messages=("健診のお知らせ", "持ち物：保険証"), segment=IN_SEGMENT
    )
    did = await service.create_draft(store, "tanaka", content)
    async with Simulator(SimulatorConfig(population=0, auto_react=False)) as sim:
        for uid in (STAFF_PHONE, OTHER_PHONE):
            sim.platform.add_follower({"userId": uid, "displayName": "職員"})
        async with line_api(sim.api_url, sim.config.access_token, 5.0) as line:
            assert await service.test_send(store, line, did, "tanaka") == 1
        receipts = sim.ledger.find(kind="push")
        assert [r.user_id for r in receipts] == [STAFF_PHONE]
        assert receipts[0].texts == (TEST_NOTICE, "健診のお知らせ", "持ち物：保険証")
        assert sim.ledger.find(kind="multicast") == []
    assert (await service.get(store, did)).status == Status.draft
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    sent = [e.entry for e in entries if e.entry.action == "delivery.test_send"]
    assert sent and sent[0].actor == "tanaka" and sent[0].detail["delivered"] == 1
    assert STAFF_PHONE not in str(sent[0].detail)


async def test_test_send_needs_recipients_and_class_1(store: Store) -> None:
    """N4, G3: without registered test recipients the test send is refused with guidance;
    a class 2 draft cannot even be created, so it can never be test-sent."""
    did = await service.create_draft(
        store, "tanaka", DeliveryContent(title="t", messages=("m",), segment=IN_SEGMENT)
    )
    sim = Simulator(SimulatorConfig(population=0, auto_react=False))
    async with sim, line_api(sim.api_url, sim.config.access_token, 5.0) as line:
        with pytest.raises(NoTestRecipients) as info:
            await service.test_send(store, line, did, "tanaka")
        assert "登録" in info.value.message_ja
    with pytest.raises(ConfidentialityRefused):
        await service.create_draft(
            store,
            "tanaka",
            DeliveryContent(title="t", confidentiality=2, messages=("m",), segment=IN_SEGMENT),
        )


@pytest.mark.req("N4")
async def test_full_length_messages_can_be_test_sent(store: Store) -> None:
    """N4: five messages of exactly 5,000 UTF-16 units (valid for LINE) are test-sent
    unchanged: the 【テスト送信】 notice is a message of its own (never glued to a text, which
    pushed it over LINE's limit), and with five texts the push is split so that no request
    carries more than LINE's 5 messages."""
    register(store, "tanaka", STAFF_PHONE)
    texts = tuple(f"{i}" + "あ" * 4999 for i in range(5))
    content = DeliveryContent(title="長文", messages=texts, segment=IN_SEGMENT)
    did = await service.create_draft(store, "tanaka", content)
    async with Simulator(SimulatorConfig(population=0, auto_react=False)) as sim:
        sim.platform.add_follower({"userId": STAFF_PHONE, "displayName": "職員"})
        async with line_api(sim.api_url, sim.config.access_token, 5.0) as line:
            assert await service.test_send(store, line, did, "tanaka") == 1
        receipts = sim.ledger.find(kind="push")
        assert all(len(r.texts) <= 5 for r in receipts)
        received = tuple(t for r in receipts for t in r.texts)
    assert received == (TEST_NOTICE, *texts)
