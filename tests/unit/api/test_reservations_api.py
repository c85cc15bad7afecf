"""Staff API for window reservations: the desk for 窓口担当 (W3), phone bookings,
changes, cancellations and 来庁/不来庁, slot settings (W5), statistics without persons (W4);
names and phones only for the counter role, every view of them audited (S8)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from kairand import demo
from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.config import Config
from kairand.evidence.audit import StoredEntry
from kairand.line.client import line_api
from kairand.reservations import calendar, notices, service
from kairand.reservations.model import Catalogue, example_service
from kairand.runtime import LINE, STOPPING, STORE
from kairand.simulator import booking as sim_booking
from kairand.store import audit as audit_store
from kairand.store import reservations as rstore
from kairand.store import residents
from kairand.store.database import Connection, Store
from tests.support.api_helpers import add_staff, header_resolver
from tests.support.retention_support import push_stand_in

SERVICE = example_service().model_copy(update={"capacity": 2})
DAY = "2027-10-01"  # a Friday


def _setup(store: Store) -> None:
    store.write_sync(service.save_catalogue, Catalogue(services=(SERVICE,)), "test", 0)


def _phone(slot: str, kana: str = "すいた はなこ", phone: str = "0663841231") -> dict:
    return {"service": "hoiku", "slot": slot, "name_kana": kana, "phone": phone}


def _last_audit(store: Store) -> StoredEntry:
    return store.read_sync(audit_store.query, audit_store.AuditFilter(), 1)[0]


@pytest.mark.req("W3")
@pytest.mark.req("S8")
async def test_desk_phone_booking_change_cancel_outcome(api: ApiClient, store: Store) -> None:
    _setup(store)
    counter = api.as_user("ctr")
    r = await counter.post("/v1/reservations/bookings", _phone(f"{DAY}T09:00"))
    assert r.status == 201, r.body
    assert (r.body["number"], r.body["name_kana"], r.body["phone"]) == (
        "000001",
        "スイタ ハナコ",
        "06-6384-1231",
    )
    assert r.body["channel"] == "phone"
    entry = _last_audit(store).entry
    assert entry.action == "api.reservations.book" and entry.detail["booking"] == "000001"
    assert "スイタ" not in str(entry.detail) and "6384" not in str(entry.detail)

    # The desk: the day's slots with places taken, and the bookings with name and phone —
    # audited as a view of personal data.
    r = await counter.get("/v1/reservations/bookings", params={"first": DAY})
    assert r.status == 200
    assert r.body["service_name"] == "保育所等利用申込" and len(r.body["slots"]) == 14
    assert r.body["slots"][0] == {"slot": f"{DAY}T09:00", "capacity": 2, "taken": 1}
    assert [b["name_kana"] for b in r.body["bookings"]] == ["スイタ ハナコ"]
    entry = _last_audit(store).entry
    assert entry.action == "api.reservations.bookings" and entry.actor == "ctr"
    assert entry.detail["personal_data_shown"] == 1
    assert "スイタ" not in str(entry.detail)

    # Change to 10:00; the old slot is free again.
    booking_id = r.body["bookings"][0]["id"]
    r = await counter.post(
        f"/v1/reservations/bookings/{booking_id}/change", {"slot": f"{DAY}T10:00"}
    )
    assert r.status == 200 and r.body["slot"] == f"{DAY}T10:00" and r.body["number"] == "000002"
    # A phone booking has no LINE to tell; a LINE booker would get a staff_change push.
    assert store.read_sync(rstore.notice_states) == {}
    # 来庁, then back, then 不来庁.
    new_id = r.body["id"]
    for outcome in ("attended", "active", "no_show"):
        r = await counter.post(f"/v1/reservations/bookings/{new_id}/outcome", {"outcome": outcome})
        assert r.status == 200 and r.body["state"] == outcome
    r = await counter.post(f"/v1/reservations/bookings/{new_id}/outcome", {"outcome": "active"})
    # Cancel (and a second cancel is a conflict, nothing changes).
    r = await counter.post(f"/v1/reservations/bookings/{new_id}/cancel", {})
    assert r.status == 200 and r.body["state"] == "cancelled"
    r = await counter.post(f"/v1/reservations/bookings/{new_id}/cancel", {})
    assert r.status == 409
    states = store.read_sync(rstore.all_states)
    assert states == {"cancelled": 2}


@pytest.mark.req("W3")
async def test_phone_booking_never_overbooks_and_validates(api: ApiClient, store: Store) -> None:
    _setup(store)
    counter = api.as_user("ctr")
    for _ in range(2):
        assert (
            await counter.post("/v1/reservations/bookings", _phone(f"{DAY}T09:00"))
        ).status == 201
    r = await counter.post("/v1/reservations/bookings", _phone(f"{DAY}T09:00"))
    assert r.status == 409 and r.body["code"] == "full"
    assert r.body["alternatives"][0] == f"{DAY}T09:30"
    assert "満席" in r.body["detail"]
    r = await counter.post("/v1/reservations/bookings", _phone(f"{DAY}T09:00", kana="山田"))
    assert r.status == 422 and r.body["field"] == "name_kana"
    r = await counter.post("/v1/reservations/bookings", _phone(f"{DAY}T09:00", phone="123"))
    assert r.status == 422 and r.body["field"] == "phone"
    r = await counter.post("/v1/reservations/bookings", _phone("2027-10-02T09:00"))  # Saturday
    assert r.status == 422 and r.body["field"] == "slot"
    assert store.read_sync(rstore.all_states) == {"active": 2}


@pytest.mark.req("S8")
@pytest.mark.parametrize("user", ["adm", "aut", "apr", "aud"])
async def test_only_counter_staff_see_names(api: ApiClient, store: Store, user: str) -> None:
    _setup(store)
    r = await api.as_user(user).get("/v1/reservations/bookings", params={"first": DAY})
    assert r.status == 403 and r.body["code"] == "role"
    assert _last_audit(store).entry.outcome == "denied"


@pytest.mark.req("W5")
async def test_slot_settings_are_versioned_and_validated(api: ApiClient, store: Store) -> None:
    _setup(store)
    counter = api.as_user("ctr")
    r = await counter.get("/v1/reservations/services")
    assert r.status == 200 and r.body["version"] == 1
    catalogue = r.body["catalogue"]
    catalogue["services"][0]["capacity"] = 5
    r = await counter.put("/v1/reservations/services", {"catalogue": catalogue})
    assert r.status == 200 and r.body["version"] == 2
    r = await counter.get("/v1/reservations/bookings", params={"first": DAY})
    assert r.body["slots"][0]["capacity"] == 5
    catalogue["services"][0]["weekly"]["mon"] = [{"start": "10:00", "end": "09:00"}]
    r = await counter.put("/v1/reservations/services", {"catalogue": catalogue})
    assert r.status == 422 and r.body["field"].startswith("catalogue.services")
    assert (await counter.get("/v1/reservations/services")).body["version"] == 2


@pytest.mark.req("W4")
async def test_statistics_are_counts_only_with_small_cells_suppressed(
    api: ApiClient, store: Store
) -> None:
    _setup(store)
    counter = api.as_user("ctr")
    for i in range(12):
        slot = f"{DAY}T{9 + i // 2 // 2:02d}:{30 * (i // 2 % 2):02d}"
        r = await counter.post("/v1/reservations/bookings", _phone(slot, phone="09012345678"))
        assert r.status == 201, (slot, r.body)
    r = await api.as_user("aud").get(
        "/v1/reservations/statistics", params={"first": DAY, "last": DAY}
    )
    assert r.status == 200
    by = {(x["dimension"], x["key"]): x["counts"] for x in r.body["lines"]}
    assert by[("service", "hoiku")] == {
        "booked": "12",
        "cancelled": "0",
        "attended": "0",
        "no_show": "0",
    }
    assert by[("time", "09:00")]["booked"] == "<10"  # 2 bookings: a small cell
    assert "スイタ" not in str(r.body) and "090" not in str(r.body)
    r = await api.as_user("aud").get(
        "/v1/reservations/statistics", params={"first": DAY, "last": DAY, "format": "csv"}
    )
    assert r.status == 200 and r.content_type == "text/csv"
    assert r.headers["Content-Disposition"].startswith("attachment")
    text = r.body
    assert text.startswith("\ufeff集計区分,値,予約,取消,来庁,不来庁")
    assert "窓口業務,保育所等利用申込,12,0,0,0" in text
    assert "時間帯,9:00,<10,0,0,0" in text
    assert "スイタ" not in text


@pytest.mark.req("W4")
async def test_a_small_cell_cannot_be_recovered_by_subtraction(
    api: ApiClient, store: Store
) -> None:
    """Within a dimension the values add up to the total: hiding only the small cell would
    let anyone subtract, so a second cell is hidden with it (as in 登録者の傾向)."""
    _setup(store)
    counter = api.as_user("ctr")
    slots = [f"{DAY}T{9 + i // 4:02d}:{30 * (i // 2 % 2):02d}" for i in range(12)]
    slots += ["2027-10-04T09:00", "2027-10-04T09:30"]  # two on Monday
    for slot in slots:
        r = await counter.post("/v1/reservations/bookings", _phone(slot))
        assert r.status == 201, (slot, r.body)
    r = await counter.get(
        "/v1/reservations/statistics", params={"first": DAY, "last": "2027-10-04"}
    )
    by = {(x["dimension"], x["key"]): x["counts"]["booked"] for x in r.body["lines"]}
    assert by[("service", "hoiku")] == "14"
    assert by[("weekday", "0")] == "<10"  # Monday: 2
    assert by[("weekday", "4")] == "<10"  # Friday: 12, hidden too (14 − 12 would give 2)


async def _until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait (polling) until CONDITION holds; fail after WITHIN seconds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


@pytest.mark.req("W1")
@pytest.mark.req("W3")
async def test_a_desk_cancellation_or_change_is_pushed_at_once(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's change and cancel wake the notice worker: the LINE booker is told at once,
    not at the worker's next tick (made an hour here, so without the wake nothing arrives)."""
    now = int(dt.datetime(2027, 9, 28, 10, 0, tzinfo=calendar.JST).timestamp())
    _setup(store)
    alice, bob = "U" + "a1" * 16, "U" + "b2" * 16
    ids = [await store.write(_line_booking, user, f"{DAY}T09:00", now) for user in (alice, bob)]
    monkeypatch.setattr(notices, "POLL_SECONDS", 3600.0)
    rounds: list[int] = []
    real_run_once = notices.run_once

    async def counted(*args: Any) -> Any:
        result = await real_run_once(*args)
        rounds.append(1)
        return result

    monkeypatch.setattr(notices, "run_once", counted)
    add_staff(store)
    wake = asyncio.Event()
    async with (
        push_stand_in() as stub,
        line_api(stub.url, "token") as line,
        serve(config, store, None, header_resolver, reservation_wake=wake),
        connect(config.api.socket) as api,
    ):
        worker_app = web.Application()
        worker_app[STORE], worker_app[STOPPING], worker_app[LINE] = store, asyncio.Event(), line
        worker_app[notices.WAKE], worker_app[notices.CLOCK] = wake, lambda: float(now)
        worker = asyncio.create_task(notices._loop(worker_app))
        try:
            await _until(lambda: bool(rounds))  # the worker now sleeps for its hour-long tick
            counter = api.as_user("ctr")
            r = await counter.post(f"/v1/reservations/bookings/{ids[0]}/cancel", {})
            assert r.status == 200
            await _until(lambda: bool(stub.texts_to(alice)))
            assert "市の都合により取り消し" in stub.texts_to(alice)[0]
            r = await counter.post(
                f"/v1/reservations/bookings/{ids[1]}/change", {"slot": f"{DAY}T10:00"}
            )
            assert r.status == 200
            await _until(lambda: bool(stub.texts_to(bob)))
            assert "予約変更のお知らせ" in stub.texts_to(bob)[0]
        finally:
            worker_app[STOPPING].set()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


def _line_booking(conn: Connection, user: str, slot: str, now: int) -> int:
    resident_id = residents.start(conn, user, now)
    result = service.book(
        conn,
        service.load_catalogue(conn)[1],
        service_code=SERVICE.code,
        slot_key=slot,
        now=now,
        resident_id=resident_id,
        channel="line",
        name_kana="スイタ ハナコ",
        phone="090-1234-5678",
    )
    assert isinstance(result, service.Booked)
    return result.booking.id


@pytest.mark.req("W3")
@pytest.mark.req("W4")
async def test_the_demo_has_past_visits_with_no_shows(api: ApiClient, store: Store) -> None:
    """The demo's last four weeks at the window: the simulator's residents, marked 来庁 or
    不来庁 as its booking model says, so the desk and the statistics have no-shows to show."""
    store.write_sync(service.save_catalogue, Catalogue(services=(example_service(),)), "t", 0)
    counter = api.as_user("ctr")
    seeded = await demo.seed_past_visits(counter, "hoiku")
    states = store.read_sync(rstore.all_states)
    assert seeded == sum(states.values()) and seeded >= 60  # about 20 weekdays of 7
    assert set(states) == {"attended", "no_show"}
    assert 0 < states["no_show"] < states["attended"]
    expected = sum(sim_booking.plan_for(seed).no_show for seed in range(1, seeded + 1))
    assert states["no_show"] == expected  # exactly the residents the model says never come
    today = calendar.today(time.time())
    r = await api.as_user("aud").get(
        "/v1/reservations/statistics",
        params={"first": (today - dt.timedelta(days=28)).isoformat(), "last": today.isoformat()},
    )
    by = {(x["dimension"], x["key"]): x["counts"] for x in r.body["lines"]}
    assert by[("service", "hoiku")]["no_show"] == str(states["no_show"])


async def test_the_daemon_hands_the_notice_workers_wake_to_the_api(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the daemon the notice worker starts before the API, and the API component passes its
    wake event to every API site it serves (so the desk's change/cancel wakes the worker, as
    tested above)."""
    from kairand.api import app as api_app
    from kairand.daemon import components
    from kairand.runtime import CONFIG

    order = components()
    assert order.index(notices.notices_component) < order.index(api_app.api_component)
    handed: list[asyncio.Event | None] = []
    real_serve = api_app.serve

    def serve_spy(*args: Any, **kwargs: Any) -> Any:
        handed.append(kwargs.get("reservation_wake"))
        return real_serve(*args, **kwargs)

    monkeypatch.setattr(api_app, "serve", serve_spy)
    main = web.Application()
    wake = asyncio.Event()
    main[CONFIG], main[STORE], main[notices.WAKE] = config, store, wake
    served = api_app.api_component(main)
    await served.__anext__()
    with contextlib.suppress(StopAsyncIteration):
        await served.__anext__()
    assert handed and all(event is wake for event in handed)
