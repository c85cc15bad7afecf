"""Never overbooked (§3): random concurrent book / cancel / change sequences against
the real SQLCipher store, through two Store handles on the same file (like the daemon and
kairanctl) with several threads each. Capacity is never exceeded and no booking is lost: every
booking a caller was told it got is in the store, in exactly the state the successful
operations imply."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairand.config import Config
from kairand.reservations import calendar, service
from kairand.reservations.model import Catalogue, Period, example_service
from kairand.store import reservations as rstore
from kairand.store import residents
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store

NOW = dt.datetime(2026, 9, 20, 9, 0, tzinfo=calendar.JST).timestamp()
SERVICE = example_service().model_copy(
    update={
        "capacity": 2,
        "max_active_per_resident": 2,
        "weekly": {"thu": (Period(start="09:00", end="10:30"),)},
    }
)
SLOTS = [s.key for s in calendar.slots_on(SERVICE, dt.date(2026, 10, 1))]
RESIDENTS = 12


@dataclass(frozen=True)
class Book:
    resident: int
    slot: int


@dataclass(frozen=True)
class Cancel:
    pick: int


@dataclass(frozen=True)
class Change:
    pick: int
    slot: int


ops = st.lists(
    st.one_of(
        st.builds(Book, st.integers(0, RESIDENTS - 1), st.integers(0, len(SLOTS) - 1)),
        st.builds(Cancel, st.integers(0, 10_000)),
        st.builds(Change, st.integers(0, 10_000), st.integers(0, len(SLOTS) - 1)),
    ),
    min_size=10,
    max_size=60,
)


def _setup(conn: Connection) -> list[int]:
    service.save_catalogue(conn, Catalogue(services=(SERVICE,)), "test", int(NOW))
    return [residents.start(conn, f"U{i:032x}", int(NOW)) for i in range(RESIDENTS)]


def _reset(conn: Connection) -> None:
    conn.execute("DELETE FROM reservation_notices")
    conn.execute("DELETE FROM reservation_bookings")


@pytest.fixture
def two_stores(config: Config, store: Store) -> Iterator[tuple[Store, Store, list[int]]]:
    ids = store.write_sync(_setup)
    second = open_store(config)
    yield store, second, ids
    second.close()


@pytest.mark.req("W1")
@pytest.mark.req("W3")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=ops)
def test_concurrent_book_cancel_change_never_overbooks_or_loses(
    two_stores: tuple[Store, Store, list[int]], sequence: list[Book | Cancel | Change]
) -> None:
    first, second, ids = two_stores
    first.write_sync(_reset)
    got: list[int] = []  # bookings callers were told they have (in completion order)
    cancelled: set[int] = set()
    replaced: set[int] = set()
    lock = threading.Lock()

    def run(index: int, op: Book | Cancel | Change) -> None:
        store = first if index % 2 else second

        def work(conn: Connection) -> None:
            _, catalogue = service.load_catalogue(conn)
            if isinstance(op, Book):
                result = service.book(
                    conn,
                    catalogue,
                    service_code=SERVICE.code,
                    slot_key=SLOTS[op.slot],
                    now=NOW,
                    resident_id=ids[op.resident],
                    channel="line",
                    name_kana="スイタ ハナコ",
                    phone="090-1234-5678",
                )
                if isinstance(result, service.Booked):
                    with lock:
                        got.append(result.booking.id)
                return
            with lock:
                live = [b for b in got if b not in cancelled and b not in replaced]
            if not live:
                return
            target = live[op.pick % len(live)]
            if isinstance(op, Cancel):
                if rstore.cancel(conn, target, "resident", int(NOW)) is not None:
                    with lock:
                        cancelled.add(target)
                return
            old = rstore.get(conn, target)
            assert old is not None
            result = service.book(
                conn,
                catalogue,
                service_code=SERVICE.code,
                slot_key=SLOTS[op.slot],
                now=NOW,
                resident_id=old.resident_id,
                channel="line",
                name_kana=old.name_kana,
                phone=old.phone,
                replaces=target,
            )
            if isinstance(result, service.Booked):
                with lock:
                    replaced.add(target)
                    got.append(result.booking.id)

        store.write_sync(work)

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(run, i, op) for i, op in enumerate(sequence)]:
            future.result()

    rows = first.read_sync(lambda c: {b.id: b for b in rstore.in_range(c, 0, 2**40)})
    # Capacity is never exceeded.
    for slot in SLOTS:
        assert sum(1 for b in rows.values() if b.slot == slot and b.state == "active") <= 2
    # No booking lost, none invented: the store holds exactly the bookings callers were given,
    # active unless a successful cancel or change ended them.
    assert sorted(rows) == sorted(got)
    for booking_id, booking in rows.items():
        ended = booking_id in cancelled or booking_id in replaced
        assert booking.state == ("cancelled" if ended else "active"), booking
    # The per-resident limit held too.
    per_resident: dict[int | None, int] = {}
    for b in rows.values():
        if b.state == "active":
            per_resident[b.resident_id] = per_resident.get(b.resident_id, 0) + 1
    assert max(per_resident.values(), default=0) <= SERVICE.max_active_per_resident


@pytest.mark.req("W1")
def test_race_for_the_last_place_gives_one_booking_and_alternatives(
    two_stores: tuple[Store, Store, list[int]],
) -> None:
    """Two residents race for the last place: one gets it, the other is told it is full and
    offered the next free times."""
    first, second, ids = two_stores

    def fill_but_one(conn: Connection) -> None:
        rstore.take(
            conn, service=SERVICE.code, slot=SLOTS[0], slot_at=0, capacity=2, resident_id=None,
            channel="phone", name_kana="ア", phone="06-6384-1231", now=int(NOW),
        )  # fmt: skip

    first.write_sync(fill_but_one)
    barrier = threading.Barrier(2)

    def attempt(store: Store, resident: int) -> service.BookResult:
        barrier.wait()
        return store.write_sync(
            lambda c: service.book(
                c,
                service.load_catalogue(c)[1],
                service_code=SERVICE.code,
                slot_key=SLOTS[0],
                now=NOW,
                resident_id=ids[resident],
                channel="line",
                name_kana="スイタ",
                phone="090-1234-5678",
            )
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, (first, second), (0, 1)))
    booked = [r for r in results if isinstance(r, service.Booked)]
    full = [r for r in results if isinstance(r, service.Full)]
    assert len(booked) == 1 and len(full) == 1
    assert [f.slot.key for f in full[0].alternatives][:2] == SLOTS[1:3]
    assert all(f.remaining == 2 for f in full[0].alternatives)
