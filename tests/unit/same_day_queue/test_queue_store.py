"""The queue on the real SQLCipher store: numbering under concurrent issue, calling order, the
desk actions, QR tokens, pushes recorded once, and the day closing."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairand.config import Config, QueueSection, QueueServiceSection
from kairand.queue import core, service
from kairand.queue.core import QueueRuleError
from kairand.store import queue as qstore
from kairand.store import residents
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store
from kairand.timeutil import JST

QUEUE = QueueSection(
    services=(
        QueueServiceSection(code="hoiku", prefix="A", name="保育所等利用申込", counters=(1, 2, 3)),
        QueueServiceSection(code="juminhyo", prefix="B", name="住民票", counters=(4,)),
    ),
    notify_when_ahead=2,
    recall_limit=2,
)
_days = itertools.count()


def at(day: int = 0, hour: int = 10, minute: int = 0) -> float:
    base = dt.datetime(2026, 10, 1, hour, minute, tzinfo=JST) + dt.timedelta(days=day)
    return base.timestamp()


def resident(store: Store, user: str) -> int:
    return store.write_sync(residents.start, user, 0)


@pytest.mark.req("W2")
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["hoiku", "juminhyo"]), st.sampled_from(["line", "kiosk"])),
            min_size=1,
            max_size=12,
        ),
        min_size=2,
        max_size=4,
    )
)
def test_numbers_never_repeat_or_skip_under_concurrent_issue(config: Config, plan: list) -> None:
    """Threads, each with its own Store (its own connections to the same file, as a second
    process would have), issue tickets at once: per service the numbers are exactly 1..n."""
    day = next(_days)
    now = at(day)
    stores = [open_store(config) for _ in plan]
    barrier = threading.Barrier(len(plan))
    issued: list[qstore.Ticket] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(store: Store, steps: list[tuple[str, str]]) -> None:
        try:
            barrier.wait()
            for code, channel in steps:
                got = store.write_sync(service.issue, QUEUE, code, channel, now)
                with lock:
                    issued.append(got.ticket)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(s, p)) for s, p in zip(stores, plan, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert not errors
    expected: dict[str, int] = defaultdict(int)
    for steps in plan:
        for code, _ in steps:
            expected[code] += 1
    with open_store(config) as check:
        for code, n in expected.items():
            rows = check.read_sync(qstore.of_day, core.day_of(now).isoformat(), code)
            assert sorted(t.number for t in rows) == list(range(1, n + 1))
            prefix = QUEUE.service(code).prefix  # type: ignore[union-attr]
            assert {t.label for t in rows} == {core.label(prefix, i) for i in range(1, n + 1)}
    assert len(issued) == sum(expected.values())


@pytest.mark.req("W2")
def test_call_order_priority_and_desk_actions(store: Store) -> None:
    now = at()
    a = [store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", now + i).ticket for i in range(3)]
    # A booked resident arriving in their slot goes first (booking looked up by service code).
    store.write_sync(lambda c: qstore.update(c, a[2].id, priority=True))
    first = store.write_sync(service.call_next, QUEUE, "hoiku", 1, now + 10)
    assert first is not None and first.id == a[2].id and first.counter == 1
    second = store.write_sync(service.call_next, QUEUE, "hoiku", 2, now + 11)
    assert second is not None and second.label == "A-001"
    # Absent only after the recall limit.
    with pytest.raises(QueueRuleError) as exc:
        store.write_sync(service.act, QUEUE, second.id, "absent", now + 12)
    assert exc.value.code == "recall_first"
    for i in range(2):
        store.write_sync(service.act, QUEUE, second.id, "recall", now + 13 + i)
    with pytest.raises(QueueRuleError):
        store.write_sync(service.act, QUEUE, second.id, "recall", now + 20)
    assert (
        store.write_sync(service.act, QUEUE, second.id, "absent", now + 21).ticket.state == "absent"
    )
    # Serve and finish; transfer keeps the resident's turn in the other queue.
    store.write_sync(service.act, QUEUE, first.id, "serve", now + 30)
    done = store.write_sync(service.act, QUEUE, first.id, "done", now + 330)
    assert done.ticket.state == "done"
    moved = store.write_sync(service.act, QUEUE, a[1].id, "transfer", now + 40, "juminhyo")
    assert moved.ticket.state == "transferred" and moved.new_ticket is not None
    assert moved.new_ticket.label == "B-001" and moved.new_ticket.priority
    with pytest.raises(QueueRuleError):
        store.write_sync(service.call_next, QUEUE, "hoiku", 4, now)  # not a hoiku counter
    store.write_sync(service.set_paused, QUEUE, 3, True, "tester", now)
    with pytest.raises(QueueRuleError) as paused:
        store.write_sync(service.call_next, QUEUE, "hoiku", 3, now + 50)
    assert paused.value.code == "paused"
    assert store.write_sync(service.call_next, QUEUE, "hoiku", 1, now + 60) is None  # empty
    # The observed service time (300 s) feeds the estimate.
    assert store.read_sync(qstore.service_seconds, core.day_of(now).isoformat(), "hoiku") == [300.0]


@pytest.mark.req("W2")
def test_issue_refused_outside_hours_and_twice_for_a_resident(store: Store) -> None:
    with pytest.raises(QueueRuleError) as exc:
        store.write_sync(service.issue, QUEUE, "hoiku", "line", at(hour=7))
    assert exc.value.code == "closed"
    with pytest.raises(QueueRuleError):
        store.write_sync(service.issue, QUEUE, "nope", "line", at())
    rid = resident(store, "U" + "1" * 32)
    store.write_sync(service.issue, QUEUE, "hoiku", "line", at(), rid)
    with pytest.raises(QueueRuleError) as again:
        store.write_sync(service.issue, QUEUE, "hoiku", "line", at(), rid)
    assert again.value.code == "already"
    assert store.read_sync(qstore.of_day, core.day_of(at()).isoformat(), "hoiku")[0].number == 1


@pytest.mark.req("W2")
def test_qr_token_single_use_unguessable_and_expires_at_day_end(store: Store) -> None:
    now = at()
    issued = store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", now)
    assert issued.token is not None
    # Only the hash is stored.
    raw = store.read_sync(lambda c: c.execute("SELECT token_hash FROM queue_tokens").fetchall())
    assert raw and all(issued.token.encode() not in bytes(r[0]) for r in raw)
    rid = resident(store, "U" + "2" * 32)
    other = resident(store, "U" + "3" * 32)
    with pytest.raises(QueueRuleError) as guess:
        store.write_sync(service.link_token, QUEUE, core.new_token(), rid, now)
    assert guess.value.code == "token"
    linked = store.write_sync(service.link_token, QUEUE, issued.token, rid, now + 5)
    assert linked.ticket.resident_id == rid and linked.ahead == 0
    with pytest.raises(QueueRuleError) as reuse:
        store.write_sync(service.link_token, QUEUE, issued.token, other, now + 6)
    assert reuse.value.code == "token_used"
    assert store.read_sync(qstore.get, issued.ticket.id).resident_id == rid  # type: ignore[union-attr]
    late = store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", at(hour=17))
    assert late.token is not None
    with pytest.raises(QueueRuleError) as expired:
        store.write_sync(service.link_token, QUEUE, late.token, other, at(day=1, hour=0))
    assert expired.value.code == "token"


@pytest.mark.req("W2")
def test_pushes_recorded_once_with_retry_keys(store: Store) -> None:
    now = at()
    rids = [resident(store, f"U{i:032x}") for i in range(5)]
    tickets = [
        store.write_sync(service.issue, QUEUE, "hoiku", "line", now + i, rid).ticket
        for i, rid in enumerate(rids)
    ]
    called = store.write_sync(service.call_next, QUEUE, "hoiku", 1, now + 100)
    assert called is not None and called.id == tickets[0].id
    pending = store.read_sync(qstore.pending_pushes)
    kinds = {(p.ticket_id, p.kind) for p in pending}
    # Called: call1; tickets with <= 2 ahead: near (tickets 1, 2, 3 → 0, 1, 2 ahead).
    assert (tickets[0].id, "call1") in kinds
    assert {t for t, k in kinds if k == "near"} == {tickets[1].id, tickets[2].id, tickets[3].id}
    assert len({p.retry_key for p in pending}) == len(pending)
    # Planning again adds nothing; a recall is a new push with its own key.
    store.write_sync(service.plan_near, QUEUE, "hoiku", core.day_of(now).isoformat(), now + 101)
    assert len(store.read_sync(qstore.pending_pushes)) == len(pending)
    store.write_sync(service.act, QUEUE, called.id, "recall", now + 102)
    assert (called.id, "call2") in {
        (p.ticket_id, p.kind) for p in store.read_sync(qstore.pending_pushes)
    }


@pytest.mark.req("W2")
def test_day_closes_open_tickets(store: Store) -> None:
    now = at()
    t = [store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", now + i).ticket for i in range(3)]
    store.write_sync(service.call_next, QUEUE, "hoiku", 1, now + 10)
    assert store.write_sync(service.close_day, QUEUE, at(hour=17)) == 0  # before 17:15
    assert store.write_sync(service.close_day, QUEUE, at(hour=17, minute=15)) == 3
    states = [store.read_sync(qstore.get, x.id).state for x in t]  # type: ignore[union-attr]
    assert states == ["absent", "cancelled", "cancelled"]
    # Tomorrow numbering starts again at 1.
    tomorrow = store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", at(day=1))
    assert tomorrow.ticket.label == "A-001"


def test_purged_resident_unlinks_ticket(store: Store) -> None:
    rid = resident(store, "U" + "9" * 32)
    ticket = store.write_sync(service.issue, QUEUE, "hoiku", "line", at(), rid).ticket

    def purge(conn: Connection) -> None:
        conn.execute("DELETE FROM residents WHERE id = ?", (rid,))

    store.write_sync(purge)
    assert store.read_sync(qstore.get, ticket.id).resident_id is None  # type: ignore[union-attr]


@pytest.mark.req("W2")
def test_booked_resident_arriving_in_the_slot_goes_first(store: Store) -> None:
    """A window reservation (same service code) gives priority within the grace period."""
    from kairand.reservations import service as reservations
    from kairand.reservations.model import Catalogue, example_service

    booked_at = dt.datetime(2026, 9, 20, 9, 0, tzinfo=JST).timestamp()
    rid = resident(store, "U" + "b" * 32)
    walk_in = resident(store, "U" + "c" * 32)

    def book(conn: Connection) -> None:
        reservations.save_catalogue(conn, Catalogue(services=(example_service(),)), "t", 0)
        _v, catalogue = reservations.load_catalogue(conn)
        result = reservations.book(
            conn,
            catalogue,
            service_code="hoiku",
            slot_key="2026-10-01T10:30",
            now=booked_at,
            resident_id=rid,
            channel="line",
            name_kana="スイタ ハナコ",
            phone="090-1234-5678",
        )
        assert isinstance(result, reservations.Booked)

    store.write_sync(book)
    early = store.write_sync(service.issue, QUEUE, "hoiku", "line", at(minute=5), walk_in)
    booked = store.write_sync(service.issue, QUEUE, "hoiku", "line", at(minute=20), rid)
    assert not early.ticket.priority and booked.ticket.priority  # 10 minutes before 10:30
    assert booked.ahead == 0 and early.ticket.number < booked.ticket.number
    first = store.write_sync(service.call_next, QUEUE, "hoiku", 1, at(minute=21))
    assert first is not None and first.id == booked.ticket.id
    # Outside the grace period (an hour early) there is no priority.
    other = resident(store, "U" + "d" * 32)

    def book_late(conn: Connection) -> None:
        _v, catalogue = reservations.load_catalogue(conn)
        result = reservations.book(
            conn,
            catalogue,
            service_code="hoiku",
            slot_key="2026-10-01T11:30",
            now=booked_at,
            resident_id=other,
            channel="line",
            name_kana="ヤマダ タロウ",
            phone="090-1111-2222",
        )
        assert isinstance(result, reservations.Booked)

    store.write_sync(book_late)
    assert not store.write_sync(
        service.issue, QUEUE, "hoiku", "line", at(minute=25), other
    ).ticket.priority
