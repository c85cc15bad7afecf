"""Deliveries through the API: the whole approval flow, four eyes, and G3 (S7, G3, S8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.config import Config
from kairand.delivery.model import TEST_NOTICE
from kairand.simulator import Simulator
from kairand.store import audit as audit_store
from kairand.store.database import Store
from tests.support.api_helpers import (
    add_residents,
    add_staff,
    count,
    header_resolver,
    with_threshold,
)

DRAFT: dict[str, Any] = {
    "title": "防災訓練のお知らせ",
    "confidentiality": 1,
    "messages": ["11月30日に防災訓練を行います。"],
    "segment": {"all_registered": True},
}


@pytest.fixture(autouse=True)
def one_registered_resident(store: Store) -> None:
    """A delivery to nobody is refused (no_recipients): every test has at least one resident."""
    add_residents(store, 1, start=900)


async def submitted(api: ApiClient, author: str) -> int:
    r = await api.as_user(author).post("/v1/deliveries", DRAFT)
    assert r.status == 201, r.body
    delivery_id = r.body["id"]
    r = await api.as_user(author).post(f"/v1/deliveries/{delivery_id}/submit")
    assert r.status == 200 and r.body["status"] == "pending_approval", r.body
    return int(delivery_id)


async def test_author_cannot_approve_own_delivery(api: ApiClient, store: Store) -> None:
    """S7 four eyes: with the default threshold 0, the author (even holding the approver role)
    is refused with urn:kairan:problem:four-eyes, audited; another approver may approve."""
    delivery_id = await submitted(api, "aut2")  # aut2 holds author and approver
    r = await api.as_user("aut2").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 403 and r.problem_type == "urn:kairan:problem:four-eyes"
    assert r.body["code"] == "self_approval" and r.body["detail"]
    entry = store.read_sync(audit_store.query, audit_store.AuditFilter(actor="aut2"), 1)[0]
    assert entry.entry.action == "api.deliveries.approve" and entry.entry.outcome == "denied"
    assert entry.entry.target == str(delivery_id)
    r = await api.as_user("aut2").get(f"/v1/deliveries/{delivery_id}")
    assert r.body["status"] == "pending_approval" and r.body["approver"] is None
    r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 200 and r.body["status"] == "approved" and r.body["approver"] == "apr"
    me = await api.as_user("apr").get("/v1/me")
    assert me.body["four_eyes"] == {"self_approval_threshold": 0, "relaxed": False}


@pytest.fixture
async def relaxed_api(config: Config, store: Store) -> AsyncIterator[ApiClient]:
    add_staff(store)
    cfg = with_threshold(config, 5)
    async with serve(cfg, store, None, header_resolver), connect(cfg.api.socket) as client:
        yield client


async def test_relaxed_threshold_lets_small_deliveries_self_approve(
    relaxed_api: ApiClient, store: Store
) -> None:
    """S7: below delivery.self_approval_threshold (here 5; one registered resident, so 1
    recipient) the author may approve; /v1/me says four eyes is relaxed."""
    me = await relaxed_api.as_user("aut2").get("/v1/me")
    assert me.body["four_eyes"] == {"self_approval_threshold": 5, "relaxed": True}
    delivery_id = await submitted(relaxed_api, "aut2")
    detail = await relaxed_api.as_user("aut2").get(f"/v1/deliveries/{delivery_id}")
    assert detail.body["status"] == "pending_approval"
    r = await relaxed_api.as_user("aut2").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 200 and r.body["approver"] == "aut2", r.body
    entry = store.read_sync(
        audit_store.query, audit_store.AuditFilter(action="api.deliveries.approve"), 1
    )[0]
    assert entry.entry.detail["four_eyes"] == "relaxed" and entry.entry.detail["recipients"] == 1


async def test_relaxed_threshold_still_holds_for_large_audiences(
    relaxed_api: ApiClient, store: Store
) -> None:
    """S7: at or above the threshold the author is refused again (5 registered residents)."""
    add_residents(store, 5)
    delivery_id = await submitted(relaxed_api, "aut2")
    r = await relaxed_api.as_user("aut2").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 403 and r.problem_type == "urn:kairan:problem:four-eyes"


async def test_an_editor_cannot_approve_either(api: ApiClient, store: Store) -> None:
    """S7 four eyes: an approver who edited someone else's draft wrote part of it, so they are
    refused too; an approver who did not touch it may approve."""
    r = await api.as_user("aut").post("/v1/deliveries", DRAFT)
    delivery_id = r.body["id"]
    edited = {**DRAFT, "messages": ["日時を訂正しました。"]}
    r = await api.as_user("aut2").put(f"/v1/deliveries/{delivery_id}", edited)
    assert r.status == 200
    await api.as_user("aut").post(f"/v1/deliveries/{delivery_id}/submit")
    r = await api.as_user("aut2").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 403 and r.problem_type == "urn:kairan:problem:four-eyes"
    r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 200 and r.body["approver"] == "apr"


async def test_reject_with_comment_then_edit_and_cancel(api: ApiClient) -> None:
    """S7: an approver sends a delivery back with a comment; the author sees it, edits the
    draft, and cancels it; moves that do not fit the status are 409 with the service's code."""
    delivery_id = await submitted(api, "aut")
    r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/reject", {"comment": ""})
    assert r.status == 422 and r.body["field"] == "comment"
    r = await api.as_user("apr").post(
        f"/v1/deliveries/{delivery_id}/reject", {"comment": "日付を確認してください。"}
    )
    assert r.status == 200 and r.body["status"] == "draft"
    assert r.body["reject_comment"] == "日付を確認してください。"
    edited = {**DRAFT, "title": "防災訓練（日付訂正）"}
    r = await api.as_user("aut").put(f"/v1/deliveries/{delivery_id}", edited)
    assert r.status == 200 and r.body["title"] == "防災訓練（日付訂正）"
    assert r.body["content"]["messages"] == DRAFT["messages"]
    r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 409 and r.body["code"] == "invalid_transition"
    r = await api.as_user("aut").post(f"/v1/deliveries/{delivery_id}/cancel")
    assert r.status == 200 and r.body["status"] == "cancelled"
    r = await api.as_user("aut").put(f"/v1/deliveries/{delivery_id}", edited)
    assert r.status == 409 and r.problem_type == "urn:kairan:problem:conflict"


async def test_list_pages_and_filters(api: ApiClient) -> None:
    """Pagination: limit/offset with next_offset, newest first; status filter validated."""
    ids = []
    for i in range(5):
        r = await api.as_user("aut").post("/v1/deliveries", {**DRAFT, "title": f"配信{i}"})
        ids.append(r.body["id"])
    await api.as_user("aut").post(f"/v1/deliveries/{ids[0]}/submit")
    seen = []
    offset: int | None = 0
    while offset is not None:
        r = await api.as_user("aud").get("/v1/deliveries", params={"limit": 2, "offset": offset})
        assert r.status == 200 and len(r.body["items"]) <= 2
        seen += [item["id"] for item in r.body["items"]]
        offset = r.body["next_offset"]
    assert sorted(seen) == sorted(ids)
    r = await api.as_user("aud").get("/v1/deliveries", params={"status": "pending_approval"})
    assert [item["id"] for item in r.body["items"]] == [ids[0]]
    r = await api.as_user("aud").get("/v1/deliveries", params={"status": "bogus"})
    assert r.status == 422 and r.body["field"] == "status"
    r = await api.as_user("aud").get("/v1/deliveries", params={"limit": "0"})
    assert r.status == 422 and r.body["field"] == "limit"


async def test_confidential_content_is_refused(api: ApiClient, store: Store) -> None:
    """G3: class 2/3 content is refused with 422 naming `confidentiality`; nothing is stored."""
    before = count(store, "deliveries")
    r = await api.as_user("aut").post("/v1/deliveries", {**DRAFT, "confidentiality": 2})
    assert r.status == 422 and r.body["field"] == "confidentiality"
    assert r.body["code"] == "confidentiality_refused"
    after = count(store, "deliveries")
    assert before == after


async def test_test_send_without_line_is_a_clear_problem(api: ApiClient) -> None:
    """A test send when the daemon has no LINE client is 503 line-unavailable, not a 500."""
    r = await api.as_user("aut").post("/v1/deliveries", DRAFT)
    r = await api.as_user("aut").post(f"/v1/deliveries/{r.body['id']}/test-send")
    assert r.status == 503 and r.problem_type == "urn:kairan:problem:line-unavailable"


async def test_approval_checks_lines_quota(
    config: Config, store: Store, line_sim: Simulator
) -> None:
    """N4: approving a delivery larger than LINE's remaining monthly quota is 409
    quota_exceeded; approving again with confirm_over_quota goes through."""
    from kairand.line.client import line_api

    add_staff(store)
    add_residents(store, 12)
    line_sim.platform.quota_limit, line_sim.platform.usage = 100, 95
    async with (
        line_api(line_sim.api_url, line_sim.config.access_token) as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        delivery_id = await submitted(api, "aut")
        r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
        assert r.status == 409 and r.body["code"] == "quota_exceeded", r.body
        r = await api.as_user("apr").post(
            f"/v1/deliveries/{delivery_id}/approve", {"confirm_over_quota": True}
        )
        assert r.status == 200 and r.body["status"] == "approved"
        assert r.body["quota_confirmed"] is True


async def test_approval_when_line_is_unreachable(config: Config, store: Store) -> None:
    """N4: LINE not answering does not block approval (the sender reads the quota again before
    sending); the audit entry says the quota check was unavailable."""
    from kairand.line.client import line_api

    add_staff(store)
    async with (
        line_api("http://127.0.0.1:9", "token", 2.0) as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        delivery_id = await submitted(api, "aut")
        r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 200 and r.body["status"] == "approved", r.body
    entry = store.read_sync(
        audit_store.query, audit_store.AuditFilter(action="api.deliveries.approve"), 1
    )[0]
    assert entry.entry.detail["quota_check"] == "unavailable"


async def test_test_send_reaches_only_the_callers_test_recipients(
    config: Config,
    store: Store,
    line_sim: Simulator,
) -> None:
    """S8: a test send pushes to the caller's own test recipients only; the audit log records
    it without any LINE user id (nor the message text)."""
    import re
    import time

    from kairand.line.client import line_api
    from kairand.store import test_recipients

    add_staff(store)
    mine, theirs = "U" + "1" * 32, "U" + "2" * 32
    for staff_phone in (mine, theirs):  # both staff members' phones follow the account
        line_sim.platform.add_follower({"userId": staff_phone, "displayName": "職員"})
    async with (
        line_api(line_sim.api_url, line_sim.config.access_token) as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        code = (await api.as_user("aut").post("/v1/test-recipients/code")).body["code"]
        other = (await api.as_user("apr").post("/v1/test-recipients/code")).body["code"]
        store.write_sync(test_recipients.claim, code, mine, int(time.time()))
        store.write_sync(test_recipients.claim, other, theirs, int(time.time()))
        r = await api.as_user("aut").post("/v1/deliveries", DRAFT)
        r = await api.as_user("aut").post(f"/v1/deliveries/{r.body['id']}/test-send")
        assert r.status == 200 and r.body == {"sent": 1}
    pushed = line_sim.ledger.find(kind="push")
    assert [p.user_id for p in pushed] == [mine]
    assert pushed[0].texts[0] == TEST_NOTICE and DRAFT["messages"][0] in pushed[0].texts[1]
    rows = store.read_sync(lambda c: c.execute("SELECT * FROM audit_log").fetchall())
    text = repr(rows)
    assert not re.search(r"U[0-9a-f]{32}", text) and DRAFT["messages"][0] not in text


async def test_a_delivery_to_nobody_is_refused(api: ApiClient, store: Store) -> None:
    """N4: submitting or approving a delivery whose segment selects 0 people
    is refused with 「該当する登録者がいません」 and names the condition that leaves no one; the
    delivery stays where it was."""
    nobody = {**DRAFT, "segment": {"conditions": [{"question": "area", "any_of": ["asahi"]}]}}
    r = await api.as_user("aut").post("/v1/deliveries", nobody)
    delivery_id = r.body["id"]
    r = await api.as_user("aut").post(f"/v1/deliveries/{delivery_id}/submit")
    assert r.status == 422 and r.body["code"] == "no_recipients", r.body
    assert r.body["detail"].startswith("該当する登録者がいません。")
    assert "「地域：旭」に当てはまる登録者がいません" in r.body["detail"]
    r = await api.as_user("aut").get(f"/v1/deliveries/{delivery_id}")
    assert r.body["status"] == "draft"
    # Approving is refused too when the audience has gone to 0 since the request.
    delivery_id = await submitted(api, "aut")
    store.write_sync(lambda conn: conn.execute("UPDATE residents SET deliveries_stopped = 1"))
    r = await api.as_user("apr").post(f"/v1/deliveries/{delivery_id}/approve")
    assert r.status == 422 and r.body["code"] == "no_recipients", r.body
    r = await api.as_user("apr").get(f"/v1/deliveries/{delivery_id}")
    assert r.body["status"] == "pending_approval"
