"""Booking reminders and the staff-cancellation notice (W1): pushed once each with a stored
retry key — a retry after a failure or a crash reuses the key, so LINE delivers at most once."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.line.client import line_api
from kairand.reservations import calendar, notices, service
from kairand.reservations.model import Catalogue, example_service
from kairand.store import reservations as rstore
from kairand.store import residents
from kairand.store.database import Connection, Store
from tests.support.retention_support import push_stand_in

SERVICE = example_service().model_copy(update={"reminder_days_before": (1,)})
BOOKED_AT = dt.datetime(2026, 9, 20, 9, 0, tzinfo=calendar.JST).timestamp()
ALICE, BOB = "U" + "a1" * 16, "U" + "b2" * 16


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=calendar.JST).timestamp())


def _setup(conn: Connection) -> dict[str, int]:
    service.save_catalogue(conn, Catalogue(services=(SERVICE,)), "test", int(BOOKED_AT))
    out = {}
    for user, slot in ((ALICE, "2026-09-24T10:00"), (BOB, "2026-09-25T13:00")):
        rid = residents.start(conn, user, int(BOOKED_AT))
        result = service.book(
            conn,
            service.load_catalogue(conn)[1],
            service_code=SERVICE.code,
            slot_key=slot,
            now=BOOKED_AT,
            resident_id=rid,
            channel="line",
            name_kana="スイタ ハナコ",
            phone="090-1234-5678",
        )
        assert isinstance(result, service.Booked)
        out[user] = result.booking.id
    return out


@pytest.mark.req("W1")
async def test_reminders_day_before_and_morning_once_each(store: Store) -> None:
    await store.write(_setup)
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        # Before the reminder time: nothing.
        assert sum((await notices.run_once(store, line, at(2026, 9, 23, 7, 59))).values()) == 0
        # The day before at 08:00: Alice's d1 reminder; a second run sends nothing more.
        assert await notices.run_once(store, line, at(2026, 9, 23, 8, 0)) == {"sent": 1}
        assert await notices.run_once(store, line, at(2026, 9, 23, 12, 0)) == {}
        # The morning of the day (and Bob's day-before reminder for the 25th).
        assert await notices.run_once(store, line, at(2026, 9, 24, 8, 5)) == {"sent": 2}
        texts = stub.texts_to(ALICE)
        assert len(texts) == 2
        assert "明日、ご予約の日です" in texts[0] and "予約番号：000001" in texts[0]
        assert "9月24日(木) 10:00" in texts[0] and "保育幼稚園室 3番窓口" in texts[0]
        assert "本日はご予約の日です" in texts[1]
        [bob] = stub.texts_to(BOB)
        assert "明日" in bob and "9月25日(金) 13:00" in bob
    states = await store.read(rstore.notice_states)
    assert states == {("d1", "sent"): 2, ("day", "sent"): 1}


@pytest.mark.req("W1")
async def test_retry_reuses_the_key_and_a_restart_never_sends_twice(store: Store) -> None:
    await store.write(_setup)
    when = at(2026, 9, 23, 8, 0)
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        stub.fail_next = [500]
        assert await notices.run_once(store, line, when) == {"retry": 1}
        # LINE accepted the retry but the answer was lost (crash before recording 'sent'):
        # the stand-in answers 409 for the accepted key and records the attempt.
        stub.fail_next = [409]
        assert await notices.run_once(store, line, when + 60) == {"sent": 1}
        assert await notices.run_once(store, line, when + 120) == {}
        keys = {r["retry_key"] for r in stub.received}
        assert len(keys) == 1 and len(stub.received) == 2
        # Delivered once: only the 409 attempt was accepted, and nothing after.
        assert len(stub.accepted_keys) == 1


@pytest.mark.req("W1")
@pytest.mark.req("W3")
async def test_staff_cancellation_notifies_the_resident_and_stops_reminders(store: Store) -> None:
    ids = await store.write(_setup)
    now = at(2026, 9, 22, 10, 0)
    cancelled = await store.write(notices.staff_cancel, ids[ALICE], "staff:counter1", now)
    assert cancelled is not None and cancelled.cancelled_by == "staff"
    assert await store.write(notices.staff_cancel, ids[ALICE], "staff:counter1", now) is None
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        assert await notices.run_once(store, line, now) == {"sent": 1}
        [text] = stub.texts_to(ALICE)
        assert "市の都合により取り消し" in text and "予約番号：000001" in text
        # No reminder for a cancelled booking.
        await notices.run_once(store, line, at(2026, 9, 23, 8, 0))
        assert len(stub.texts_to(ALICE)) == 1


async def test_purged_resident_gets_nothing_and_loses_name_and_phone(store: Store) -> None:
    ids = await store.write(_setup)
    await store.write(residents.delete, BOB)
    bob = await store.read(rstore.get, ids[BOB])
    assert bob is not None
    assert (bob.state, bob.cancelled_by, bob.name_kana, bob.phone, bob.resident_id) == (
        "cancelled",
        "purge",
        None,
        None,
        None,
    )
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        await notices.run_once(store, line, at(2026, 9, 24, 8, 0))
        assert stub.texts_to(BOB) == []


@pytest.mark.req("W3")
async def test_staff_change_tells_the_resident_the_new_time(store: Store) -> None:
    from kairand.api.routes import reservations as routes

    ids = await store.write(_setup)
    now = at(2026, 9, 22, 10, 0)
    result = await store.write(routes._change, ids[ALICE], "2026-09-25T14:00", "counter1", now)
    assert isinstance(result, service.Booked)
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        assert await notices.run_once(store, line, now) == {"sent": 1}
        [text] = stub.texts_to(ALICE)
        assert "予約変更のお知らせ" in text and "予約番号：000003" in text
        assert "9月25日(金) 14:00" in text
        assert all(len(r["retry_key"]) == 36 for r in stub.received)  # a UUID, as LINE wants
