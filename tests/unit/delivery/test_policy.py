"""Four eyes (S7) as a pure rule: kairand.delivery.policy."""

from __future__ import annotations

import pytest

from kairand.delivery import policy, service
from kairand.delivery.model import DeliveryContent
from kairand.store.database import Store
from tests.support.delivery_harness import IN_SEGMENT, populate

pytestmark = pytest.mark.req("S7")


def test_writers_are_the_author_and_every_editor() -> None:
    assert policy.writers("sato", ["tanaka", "sato"]) == frozenset({"sato", "tanaka"})
    assert policy.writers("sato", []) == frozenset({"sato"})


@pytest.mark.parametrize(
    ("recipients", "threshold", "allowed"),
    [
        (5, 0, False),  # threshold 0: never
        (0, 0, False),
        (9, 10, True),  # below the threshold
        (10, 10, False),  # at the threshold: no
        (11, 10, False),
        (None, 10, False),  # audience unknown: no
    ],
)
def test_self_approval_only_below_the_threshold(
    recipients: int | None, threshold: int, allowed: bool
) -> None:
    assert policy.can_self_approve(recipients, threshold) is allowed


def test_another_person_may_always_approve() -> None:
    decision = policy.decide("suzuki", frozenset({"sato", "tanaka"}), 0, None)
    assert decision.allowed and not decision.self_approval
    assert decision.audit_note is None


def test_an_editor_counts_as_a_writer() -> None:
    writers = policy.writers("sato", ["tanaka"])
    refused = policy.decide("tanaka", writers, 0, None)
    assert not refused.allowed and refused.self_approval
    assert refused.audit_note == "refused"


def test_a_writer_under_the_threshold_is_relaxed_and_the_count_is_kept() -> None:
    decision = policy.decide("sato", frozenset({"sato"}), 10, 3)
    assert decision.allowed and decision.self_approval and decision.recipients == 3
    assert decision.audit_note == "relaxed"
    assert not policy.decide("sato", frozenset({"sato"}), 10, 10).allowed


def test_the_audience_is_counted_only_when_it_can_change_the_answer() -> None:
    writers = frozenset({"sato"})
    assert policy.needs_audience("sato", writers, 10)
    assert not policy.needs_audience("sato", writers, 0)  # refused whatever the count
    assert not policy.needs_audience("suzuki", writers, 10)  # not a writer


# -- the service applies the rule to stored facts ---------------------------------------------


async def test_service_counts_editors_and_recounts_the_audience(store: Store) -> None:
    """The service reads who edited the delivery from the audit chain and counts the audience
    at approval (answers may have changed since the draft was written)."""

    def content(title: str) -> DeliveryContent:
        return DeliveryContent(title=title, messages=("訓練を行います。",), segment=IN_SEGMENT)

    did = await service.create_draft(store, "sato", content("防災訓練のお知らせ"))
    await service.update_draft(store, did, content("防災訓練のお知らせ（改訂）"), "tanaka")
    view = await service.get(store, did)  # (a delivery to nobody cannot be submitted yet)

    other = await service.four_eyes(store, view, "suzuki", 10)
    assert other.allowed and not other.self_approval and other.recipients is None

    none_yet = await service.four_eyes(store, view, "tanaka", 10)  # an editor, empty audience
    assert none_yet.allowed and none_yet.recipients == 0

    expected = populate(store, 40)  # residents registered after the draft was written
    assert len(expected) >= 10
    await service.submit(store, did, "sato")
    view = await service.get(store, did)
    later = await service.four_eyes(store, view, "tanaka", 10)
    assert later.recipients == len(expected) and not later.allowed
    assert (await service.four_eyes(store, view, "sato", 0)).audit_note == "refused"
