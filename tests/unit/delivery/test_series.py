"""Scheduled and recurring deliveries with an injected clock: a scheduled delivery
waits for its time; a series is approved once and each occurrence is sent exactly once, also
across downtime (late within the grace, otherwise skipped and reported); pause/resume/end."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.config import RecurringSection
from kairand.delivery import series, service
from kairand.delivery.errors import ConfidentialityRefused, InvalidTransition
from kairand.delivery.model import DeliveryContent, Status
from kairand.delivery.recurrence import RecurrenceRule
from kairand.delivery.sender import Sender
from kairand.delivery.series import SeriesWorker
from kairand.store import audit as audit_store
from kairand.store.database import Store
from kairand.timeutil import JST
from tests.support.delivery_harness import (
    IN_SEGMENT,
    approved,
    fast_config,
    populate,
    run_sender,
    simulator,
)

MONDAY = dt.datetime(2030, 1, 7, 8, 0, tzinfo=JST)  # a Monday, no holiday
WEEKLY = RecurrenceRule(
    frequency="weekly", weekdays=(0,), time=dt.time(8, 0), start=MONDAY.date(), count=3
)


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, at: dt.datetime) -> None:
        self.now = at.timestamp()


def audit_actions(store: Store, prefix: str) -> list[tuple[str, str, dict]]:
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    return [
        (e.entry.action, e.entry.actor, e.entry.detail)
        for e in entries
        if e.entry.action.startswith(prefix)
    ]


@pytest.mark.req("N4")
async def test_scheduled_delivery_waits_for_its_time(store: Store) -> None:
    """N4: a delivery scheduled for later is not frozen or sent before its time, with the
    sender's clock injected: one second before, nothing; at its time, sent."""
    populate(store, 20)
    at = dt.datetime.now(JST) + dt.timedelta(days=3)
    did = await approved(store, scheduled_at=at)
    assert (await service.get(store, did)).status == Status.scheduled
    clock = Clock(at - dt.timedelta(seconds=1))
    async with simulator(20) as line:
        sender = Sender(store, line.api, fast_config(), clock=clock)
        assert await sender.step() is False
        assert line.sim.requests == 0
        view = await service.get(store, did)
        assert view.status == Status.scheduled and view.batch_total == 0  # not even frozen
        clock.set(at)
        assert await sender.step() is True
        assert (await service.get(store, did)).status == Status.sent
        assert line.sim.requests >= 1


async def active_series(store: Store, rule: RecurrenceRule = WEEKLY, approve_at: float = 0) -> int:
    content = DeliveryContent(
        title="ごみの日", messages=("明日は燃えるごみの日です。",), segment=IN_SEGMENT
    )
    sid = await series.create(store, "tanaka", content, rule)
    await series.submit(store, sid, "tanaka")
    await series.approve(store, sid, "suzuki", now=approve_at or None)
    return sid


@pytest.mark.req("N4")
@pytest.mark.req("S8")
async def test_series_sends_each_occurrence_once_at_its_time(store: Store) -> None:
    """N4, S8: approved once, the series creates one delivery per occurrence when its time
    comes (none before), each with its own audience snapshot and batches with their own retry
    keys; repeated worker passes create nothing twice; the residents receive each occurrence
    exactly once; the series ends by itself after its count; all of it audited."""
    expected = populate(store, 30)
    clock = Clock(MONDAY - dt.timedelta(days=2))
    sid = await active_series(store, approve_at=clock.now)
    view = await series.get(store, sid, now=clock.now)
    assert view.row.status == "active"
    assert [o.date().isoformat() for o in view.next_occurrences] == [
        "2030-01-07",
        "2030-01-14",
        "2030-01-21",
    ]
    worker = SeriesWorker(store, RecurringSection(grace_seconds=600), clock=clock)
    async with simulator(30) as line:
        sender = Sender(store, line.api, fast_config(), clock=clock)
        assert await worker.step() == 0
        for week in range(3):
            at = MONDAY + dt.timedelta(weeks=week)
            clock.set(at - dt.timedelta(minutes=1))
            assert await worker.step() == 0 and await sender.step() is False
            clock.set(at + dt.timedelta(seconds=5))
            assert await worker.step() == 1
            assert await worker.step() == 0  # exactly once
            newest = (await service.list_deliveries(store, limit=1))[0]
            await run_sender(sender, store=store, delivery_ids=(newest.id,))
            assert len(line.sim.multicasts) == week + 1
        received = line.sim.received()
        assert set(received) == expected and set(received.values()) == {3}
        keys = [m.retry_key for m in line.sim.multicasts]
        assert len(set(keys)) == len(keys) == 3
    view = await series.get(store, sid, now=clock.now)
    assert view.row.status == "ended" and view.row.occurrences_done == 3
    deliveries = await service.list_deliveries(store)
    assert sorted(d.title for d in deliveries) == [
        "ごみの日（1/14）",
        "ごみの日（1/21）",
        "ごみの日（1/7）",
    ]
    assert all(d.status == Status.sent and d.approver == "suzuki" for d in deliveries)
    actions = [a for a, _, _ in audit_actions(store, "series.")]
    assert actions == [
        "series.create",
        "series.submit",
        "series.approve",
        "series.occurrence",
        "series.occurrence",
        "series.occurrence",
        "series.end",
    ]


@pytest.mark.req("N4")
async def test_downtime_sends_late_within_grace_and_reports_the_rest(store: Store) -> None:
    """N4: the box was off over two occurrences; at restart the one past the grace is skipped
    and reported (audit, history), the one within the grace is sent late, once."""
    populate(store, 10)
    rule = WEEKLY.model_copy(update={"count": None})
    clock = Clock(MONDAY - dt.timedelta(days=1))
    sid = await active_series(store, rule, approve_at=clock.now)
    worker = SeriesWorker(store, RecurringSection(grace_seconds=3600), clock=clock)
    clock.set(MONDAY + dt.timedelta(weeks=1, minutes=30))  # back 30 min after the 2nd one
    assert await worker.step() == 2
    assert await worker.step() == 0
    view = await series.get(store, sid, now=clock.now)
    history = {
        dt.datetime.fromtimestamp(at, JST).date().isoformat(): (outcome, did)
        for at, outcome, did, _ in view.history
    }
    assert history["2030-01-07"] == ("skipped_late", None)
    assert history["2030-01-14"][0] == "created"
    skipped = [d for a, _, d in audit_actions(store, "series.occurrence_skipped")]
    assert skipped and skipped[0]["reason"] == "missed while the appliance was not running"
    async with simulator(10) as line:
        sender = Sender(store, line.api, fast_config(), clock=clock)
        await run_sender(sender, store=store, delivery_ids=(history["2030-01-14"][1],))
        assert len(line.sim.multicasts) == 1
    assert view.next_occurrences[0].date().isoformat() == "2030-01-21"


@pytest.mark.req("S8")
async def test_pause_resume_end_are_audited_and_respected(store: Store) -> None:
    """S8: a paused series sends nothing (its occurrences are noted as skipped), resumes with
    the next occurrence, and an ended one never sends again; each change is audited with who
    did it."""
    populate(store, 5)
    rule = WEEKLY.model_copy(update={"count": None})
    clock = Clock(MONDAY - dt.timedelta(days=1))
    sid = await active_series(store, rule, approve_at=clock.now)
    worker = SeriesWorker(store, RecurringSection(), clock=clock)
    await series.change(store, sid, "tanaka", "pause")
    clock.set(MONDAY + dt.timedelta(minutes=1))
    assert await worker.step() == 1
    assert [d for d in await service.list_deliveries(store)] == []
    await series.change(store, sid, "suzuki", "resume")
    clock.set(MONDAY + dt.timedelta(weeks=1, minutes=1))
    assert await worker.step() == 1
    assert len(await service.list_deliveries(store)) == 1
    await series.change(store, sid, "tanaka", "end")
    clock.set(MONDAY + dt.timedelta(weeks=2, minutes=1))
    assert await worker.step() == 0
    with pytest.raises(InvalidTransition):
        await series.change(store, sid, "tanaka", "resume")
    changes = [
        (a, who)
        for a, who, _ in audit_actions(store, "series.")
        if a in ("series.pause", "series.resume", "series.end")
    ]
    assert changes == [
        ("series.pause", "tanaka"),
        ("series.resume", "suzuki"),
        ("series.end", "tanaka"),
    ]


async def test_series_needs_approval_and_refuses_class_2(store: Store) -> None:
    """A draft or pending series sends nothing; G3 holds for series too."""
    populate(store, 5)
    content = DeliveryContent(title="t", messages=("m",), segment=IN_SEGMENT)
    sid = await series.create(store, "tanaka", content, WEEKLY)
    clock = Clock(MONDAY + dt.timedelta(minutes=1))
    assert await SeriesWorker(store, RecurringSection(), clock=clock).step() == 0
    with pytest.raises(InvalidTransition):
        await series.approve(store, sid, "suzuki")  # not submitted
    secret = content.model_copy(update={"confidentiality": 2})
    with pytest.raises(ConfidentialityRefused):
        await series.create(store, "tanaka", secret, WEEKLY)


@pytest.mark.req("S7")
async def test_a_series_writer_never_approves_it(store: Store) -> None:
    """S7: four eyes live in the series service (not only in the HTTP handler): neither the
    author nor anyone who edited the series approves it, and a refusal changes nothing;
    another person may."""
    populate(store, 5)
    content = DeliveryContent(title="t", messages=("m",), segment=IN_SEGMENT)
    sid = await series.create(store, "tanaka", content, WEEKLY)
    edited = content.model_copy(update={"messages": ("m2",)})
    assert await series.update(store, sid, "sato", edited, WEEKLY) == "updated"
    await series.submit(store, sid, "tanaka")
    for writer in ("tanaka", "sato"):
        with pytest.raises(series.SelfApprovalRefused) as refused:
            await series.approve(store, sid, writer)
        assert refused.value.code == "self_approval"
        assert "定期配信を作成した方とは別の承認者" in refused.value.message_ja
        view = await series.get(store, sid)
        assert view.row.status == "pending_approval" and view.row.approver is None
    await series.approve(store, sid, "suzuki")
    view = await series.get(store, sid)
    assert view.row.status == "active" and view.row.approver == "suzuki"
    assert [a for a, _, _ in audit_actions(store, "series.approve")] == ["series.approve"]
