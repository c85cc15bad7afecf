"""A sent alert is pushed at once to the LINE test recipients of the approvers and
the sending institution's heads, marked as a staff notification; nobody else gets it."""

from __future__ import annotations

import time

import pytest

from kairand.delivery.alert_notify import notify_test_recipients
from kairand.line.client import line_api
from kairand.programs import service
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store import test_recipients
from kairand.store.database import Store
from tests.support.programs_support import FILLED, KINDERGARTEN, setup_program

PHONES = {
    "kato": "U" + "1" * 32,  # approver
    "suzuki": "U" + "2" * 32,  # approver
    "hayashi": "U" + "3" * 32,  # たんぽぽこども園's head
    "yamada": "U" + "4" * 32,  # the author: not notified
    "sato": "U" + "5" * 32,  # another institution's author: not notified
}


def register(store: Store, staff: str, line_user_id: str) -> None:
    now = int(time.time())
    code = store.write_sync(test_recipients.new_code, staff, now)
    assert store.write_sync(test_recipients.claim, code, line_user_id, now) == staff


@pytest.mark.req("K1")
async def test_approvers_and_the_head_get_the_alert_on_their_test_recipients(
    store: Store,
) -> None:
    tid = await setup_program(store)
    for staff, phone in PHONES.items():
        register(store, staff, phone)
    sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
    # Every approver (the store's first administrator too) and the head; not the authors.
    approvers = {
        s.username for s in store.read_sync(staff_store.all_staff) if "approver" in s.roles
    }
    assert set(sent.notify) == approvers | {"hayashi"} and {"kato", "suzuki"} <= approvers
    async with Simulator(SimulatorConfig(population=0, auto_react=False)) as sim:
        for phone in PHONES.values():
            sim.platform.add_follower({"userId": phone, "displayName": "職員"})
        async with line_api(sim.api_url, sim.config.access_token, 5.0) as line:
            assert await notify_test_recipients(store, line, sent) == 3
        pushes = sim.ledger.find(kind="push")
    notified = {PHONES[s] for s in ("kato", "suzuki", "hayashi")}
    assert sorted(r.user_id for r in pushes) == sorted(notified)  # one push each
    for receipt in pushes:
        (text,) = receipt.texts
        assert text.startswith("【職員向け通知：緊急配信が送信されました】")
        assert sent.text in text
    assert not sim.ledger.find(kind="multicast")
    entries = [
        e.entry
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        if e.entry.action == "alert.notify"
    ]
    assert [(e.outcome, e.detail) for e in entries] == [
        ("ok", {"staff": len(sent.notify), "pushed": 3})
    ]
