"""Training fast-forward (`make demo`): the schedule clock jumps to a series' next
occurrence once the previous occurrence was sent; the rule, the worker and the sender are the
real ones. Never on an appliance (the config refuses it outside training mode)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from kairand.config import RecurringSection, parse_config
from kairand.delivery import series, service
from kairand.delivery.model import DeliveryContent, Status
from kairand.delivery.recurrence import RecurrenceRule
from kairand.delivery.schedule_clock import ScheduleClock, load_offset
from kairand.delivery.sender import Sender
from kairand.delivery.series import SeriesWorker
from kairand.errors import ConfigError
from kairand.store.database import Store
from kairand.timeutil import JST
from tests.support.delivery_harness import IN_SEGMENT, fast_config, populate, run_sender, simulator


def test_clock_only_moves_forward() -> None:
    clock = ScheduleClock()
    before = time.time()
    assert before <= clock() <= time.time()
    assert clock.advance_to(before + 7 * 86400)
    assert clock() >= before + 7 * 86400
    assert not clock.advance_to(before + 86400)  # never backwards
    assert clock.offset > 6 * 86400


def test_fast_forward_is_refused_outside_training(tmp_path: object) -> None:
    raw = {"recurring": {"training_fast_forward_seconds": 10}}
    with pytest.raises(ConfigError, match="training_mode"):
        parse_config(raw, base_dir=tmp_path)  # type: ignore[arg-type]
    ok = parse_config(
        {"daemon": {"training_mode": True}, "recurring": {"training_fast_forward_seconds": 10}},
        base_dir=tmp_path,  # type: ignore[arg-type]
    )
    assert ok.recurring.training_fast_forward_seconds == 10


@pytest.mark.req("N4")
async def test_fast_forward_sends_a_weekly_series_twice_in_moments(store: Store) -> None:
    """N4: a weekly series approved now: the worker jumps the shared clock to the next
    occurrence, the sender (on the same clock) sends it; no jump while it is unsent or before
    the pause has passed; then the next week's occurrence goes out. The offset is kept."""
    expected = populate(store, 12)
    today = dt.datetime.now(JST).date()
    rule = RecurrenceRule(
        frequency="weekly", weekdays=(today.weekday(),), time=dt.time(7, 0), start=today
    )
    content = DeliveryContent(title="資源ごみの日", messages=("明日は資源ごみの日です。",),
                              segment=IN_SEGMENT)  # fmt: skip
    sid = await series.create(store, "tanaka", content, rule)
    await series.submit(store, sid, "tanaka")
    await series.approve(store, sid, "suzuki")
    nexts = (await series.get(store, sid)).next_occurrences
    clock = ScheduleClock()
    worker = SeriesWorker(
        store, RecurringSection(training_fast_forward_seconds=3600), fast_forward=clock
    )
    async with simulator(12) as line:
        sender = Sender(store, line.api, fast_config(), clock=clock)
        assert await worker.step() == 0  # nothing due: the clock jumps to the first occurrence
        assert clock() >= nexts[0].timestamp()
        assert await store.read(load_offset) == pytest.approx(clock.offset)
        assert await worker.step() == 1
        first = (await service.list_deliveries(store, limit=1))[0]
        assert first.status == Status.scheduled
        # Unsent occurrence and the pause not yet over: no jump.
        assert await worker.step() == 0 and clock() < nexts[1].timestamp()
        await run_sender(sender, store=store, delivery_ids=(first.id,))
        assert await worker.step() == 0 and clock() < nexts[1].timestamp()  # pause (3600 s)
        worker._last_occurrence = time.monotonic() - 3601
        assert await worker.step() == 0 and clock() >= nexts[1].timestamp()
        assert await worker.step() == 1
        second = (await service.list_deliveries(store, limit=1))[0]
        await run_sender(sender, store=store, delivery_ids=(second.id,))
        received = line.sim.received()
        assert set(received) == expected and set(received.values()) == {2}
    views = [await service.get(store, d) for d in (first.id, second.id)]
    assert all(v.status == Status.sent for v in views)
    assert [v.title for v in views] == [f"資源ごみの日（{o.month}/{o.day}）" for o in nexts[:2]]
