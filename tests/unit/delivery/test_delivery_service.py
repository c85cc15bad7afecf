"""Delivery content rules, the status machine and G3, through the service functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from kairand.audit.chain import verify
from kairand.delivery import service
from kairand.delivery.errors import (
    ConfidentialityRefused,
    DeliveryNotFound,
    InvalidContent,
    InvalidTransition,
    NoRecipients,
)
from kairand.delivery.model import MAX_TEXT_UNITS, DeliveryContent, Status, utf16_units
from kairand.segments.model import SegmentFilter
from kairand.store import audit as audit_store
from kairand.store.database import Store

AREA = SegmentFilter.model_validate({"conditions": [{"question": "area", "any_of": ["asahi"]}]})


def add_registered(store: Store, area: str, start: int = 0, n: int = 1) -> None:
    """N registered residents who answered 地域 = AREA."""

    def insert(conn: Any) -> None:
        for i in range(start, start + n):
            cur = conn.execute(
                "INSERT INTO residents (line_user_id, followed_at, registered_at,"
                " last_interaction_at) VALUES (?, 1, 1, 1)",
                (f"U{i:032x}",),
            )
            conn.execute(
                "INSERT INTO answers (resident_id, question, value, number, answered_at)"
                " VALUES (?, 'area', ?, NULL, 1)",
                (cur.lastrowid, area),
            )

    store.write_sync(insert)


@pytest.fixture
def asahi_resident(store: Store) -> None:
    add_registered(store, "asahi", start=500)


def content(**kw: Any) -> DeliveryContent:
    base: dict[str, Any] = {
        "title": "防災訓練のお知らせ",
        "messages": ("訓練を行います。",),
        "segment": AREA,
    }
    base.update(kw)
    return DeliveryContent(**base)


def test_text_limit_counts_utf16_units() -> None:
    """N4: the 5,000 limit is counted in UTF-16 code units; an emoji outside the BMP is 2."""
    assert utf16_units("あ") == 1
    assert utf16_units("😀") == 2
    exact = "😀" * (MAX_TEXT_UNITS // 2)
    assert content(messages=(exact,)).messages == (exact,)
    assert len(exact) == 2500  # Python counts code points: the limit is not len()
    with pytest.raises(ValidationError, match="5001 UTF-16 units"):
        content(messages=(exact + "a",))
    with pytest.raises(ValidationError):
        content(messages=("a" * (MAX_TEXT_UNITS + 1),))
    content(messages=("a" * MAX_TEXT_UNITS,))


def test_one_to_five_messages_and_aware_schedule() -> None:
    """N4: 1–5 text messages; a schedule must carry a time zone."""
    with pytest.raises(ValidationError):
        content(messages=())
    with pytest.raises(ValidationError):
        content(messages=("a",) * 6)
    content(messages=("a",) * 5)
    with pytest.raises(ValidationError, match="time zone"):
        content(scheduled_at=dt.datetime(2030, 1, 1, 9, 0))


async def test_status_machine_happy_path_and_reject(store: Store, asahi_resident) -> None:
    """N4, S8: draft → pending_approval → (reject → draft) → approved; invalid moves refused;
    every change is in the audit chain."""
    did = await service.create_draft(store, "tanaka", content())
    view = await service.get(store, did)
    assert view.status == Status.draft and view.author == "tanaka"
    with pytest.raises(InvalidTransition):
        await service.approve(store, did, "suzuki")
    await service.submit(store, did, "tanaka")
    with pytest.raises(InvalidTransition):
        await service.update_draft(store, did, content(title="変更"), "tanaka")
    await service.reject(store, did, "suzuki", "日時を追記してください")
    view = await service.get(store, did)
    assert view.status == Status.draft and view.reject_comment == "日時を追記してください"
    await service.update_draft(store, did, content(title="変更後"), "tanaka")
    await service.submit(store, did, "tanaka")
    assert await service.approve(store, did, "suzuki") == Status.approved
    view = await service.get(store, did)
    assert view.approver == "suzuki" and view.title == "変更後"
    with pytest.raises(InvalidTransition):
        await service.submit(store, did, "tanaka")
    actions = [e.entry.action for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))]
    assert actions.count("delivery.submit") == 2 and "delivery.reject" in actions
    assert store.read_sync(lambda c: verify(audit_store.iter_entries(c))).ok
    assert [v.id for v in await service.list_deliveries(store, Status.approved)] == [did]
    with pytest.raises(DeliveryNotFound):
        await service.get(store, did + 100)


async def test_schedule_in_future_becomes_scheduled(asahi_resident, store: Store) -> None:
    """N4: approving a delivery with a future send time makes it scheduled."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    did = await service.create_draft(store, "tanaka", content(scheduled_at=later))
    await service.submit(store, did, "tanaka")
    assert await service.approve(store, did, "suzuki") == Status.scheduled
    await service.cancel(store, did, "suzuki")
    assert (await service.get(store, did)).status == Status.cancelled
    with pytest.raises(InvalidTransition):
        await service.cancel(store, did, "suzuki")


@pytest.mark.parametrize("klass", [2, 3])
async def test_confidentiality_2_and_3_refused(store: Store, klass: int) -> None:
    """G3: information of confidentiality class 2 or 3 can never be sent through LINE."""
    with pytest.raises(ConfidentialityRefused) as info:
        await service.create_draft(store, "tanaka", content(confidentiality=klass))
    assert "機密性" in info.value.message_ja
    did = await service.create_draft(store, "tanaka", content())
    with pytest.raises(ConfidentialityRefused):
        await service.update_draft(store, did, content(confidentiality=klass), "tanaka")


async def test_segment_checked_against_survey(store: Store) -> None:
    """N4: a segment naming an unknown option is refused with the field named."""
    bad = SegmentFilter.model_validate({"conditions": [{"question": "area", "any_of": ["mars"]}]})
    with pytest.raises(InvalidContent) as info:
        await service.create_draft(store, "tanaka", content(segment=bad))
    assert info.value.field == "segment.conditions[0].any_of[0]"


async def test_no_recipients_refused_naming_the_condition(store: Store) -> None:
    """N4: the service itself (not only the TUI) refuses to submit a
    delivery that reaches nobody, and names which condition leaves no one."""
    add_registered(store, "asahi", start=700, n=3)
    did = await service.create_draft(store, "tanaka", content())
    await service.submit(store, did, "tanaka")  # 3 people: fine
    two = SegmentFilter.model_validate(
        {
            "conditions": [
                {"question": "area", "any_of": ["asahi"]},
                {"question": "topics", "any_of": ["kosodate"]},
            ]
        }
    )
    did = await service.create_draft(store, "tanaka", content(segment=two))
    with pytest.raises(NoRecipients) as refused:
        await service.submit(store, did, "tanaka")
    assert refused.value.message_ja.startswith("該当する登録者がいません。")
    assert "受け取りたい情報：子育て" in refused.value.reason
    assert "条件を加えると、対象が0人になります" in refused.value.reason
    assert (await service.get(store, did)).status == Status.draft
