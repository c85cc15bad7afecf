"""The 窓口予約 desk (W3/W5/W4) under Pilot against the REAL staff API and SQLCipher
store (the API runs in a background thread): the day's bookings with names for the 窓口担当
role, a phone booking, a change, a cancellation that notifies the LINE booker, 来庁, the slot
settings editor and the chart; snapshots at 80×24 and 120×36."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from textual.widgets import DataTable

from kairand.api.app import serve
from kairand.api.identity import Peer
from kairand.config import Config
from kairand.reservations import calendar, service
from kairand.reservations.model import Catalogue, example_service
from kairand.store import audit as audit_store
from kairand.store import reservations as rstore
from kairand.store import residents, staff
from kairand.store.database import Connection, Store
from tests.support.tui_helpers import type_into, wait_until

DAY = dt.date(2027, 10, 1)  # a Friday
SERVICE = example_service()
PEOPLE = [
    ("09:00", "スイタ ハナコ", "090-1234-5678", "line"),
    ("09:00", "ヤマダ タロウ", "06-6384-1231", "phone"),
    ("10:30", "タカハシ ジュンイチロウ", "080-2222-3333", "line"),
    ("13:00", "イトウ サクラ", "070-4444-5555", "phone"),
]


def _seed(conn: Connection) -> None:
    service.save_catalogue(conn, Catalogue(services=(SERVICE,)), "test", 0)
    staff.upsert(conn, staff.StaffRecord("madoguchi", "窓口 花子", ("counter",)), 0)
    _, catalogue = service.load_catalogue(conn)
    for i, (time, kana, phone, channel) in enumerate(PEOPLE):
        rid = residents.start(conn, f"U{i:032x}", 0) if channel == "line" else None
        result = service.book(
            conn,
            catalogue,
            service_code=SERVICE.code,
            slot_key=f"{DAY.isoformat()}T{time}",
            now=dt.datetime(2027, 9, 20, tzinfo=calendar.JST).timestamp(),
            resident_id=rid,
            channel=channel,
            name_kana=kana,
            phone=phone,
            staff=True,
        )
        assert isinstance(result, service.Booked)


class ThreadedApi:
    """The real staff API (kairand.api.app.serve) on a loop in a background thread."""

    def __init__(self, config: Config, store: Store) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stop = asyncio.Event()
        self.ready = threading.Event()

        async def as_counter(request: web.Request) -> Peer:
            return Peer(1000, "madoguchi")

        async def run() -> None:
            async with serve(config, store, None, as_counter):
                self.ready.set()
                await self.stop.wait()

        self.future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        assert self.ready.wait(15)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def desk_app(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[object, Store]]:
    from kairan_tui.app import make_app
    from kairan_tui.screens.reservations import ReservationDeskScreen

    monkeypatch.setattr(ReservationDeskScreen, "START_DATE", DAY)
    store.write_sync(_seed)
    api = ThreadedApi(config, store)
    try:
        yield make_app(Path(config.api.socket), connection_check_seconds=60.0), store
    finally:
        api.close()


async def _open_desk(pilot, app) -> None:
    from kairan_tui.screens.reservations import ReservationDeskScreen

    await wait_until(pilot, lambda: app.me is not None)
    await pilot.press("f10")
    await wait_until(
        pilot,
        lambda: (
            isinstance(app.screen, ReservationDeskScreen)
            and app.screen.desk is not None
            and app.screen.query_one("#desk-table", DataTable).row_count > 0
        ),
    )


def _bookings(store: Store) -> list[rstore.Booking]:
    return store.read_sync(lambda c: rstore.in_range(c, 0, 2**40))


@pytest.mark.req("W3")
@pytest.mark.req("W5")
@pytest.mark.req("S8")
@pytest.mark.allow_blocking
async def test_desk_flow(desk_app) -> None:
    from kairan_tui.modals.confirm import ConfirmModal
    from kairan_tui.screens.reservations import (
        ChangeModal,
        PhoneBookingModal,
        SlotSettingsModal,
    )
    from kairan_tui.widgets.bar_chart import BarChart

    app, store = desk_app
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_desk(pilot, app)
        table = app.screen.query_one("#desk-table", DataTable)
        assert table.row_count == 4
        assert "スイタ ハナコ" in str(table.get_row_at(0)[2])
        # S8: the load was audited as a view of personal data.
        entries = store.read_sync(
            audit_store.query, audit_store.AuditFilter(action="api.reservations.bookings"), 5
        )
        assert entries and entries[0].entry.detail["personal_data_shown"] == 4

        # 電話予約 at 10:30 (one place left after 1 booking there: capacity 3).
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, PhoneBookingModal))
        modal = app.screen
        await type_into(pilot, modal.query_one("#booking-time"), "10:30")
        modal.query_one("#booking-kana").value = "おおさか　みどり"
        modal.query_one("#booking-phone").value = "０６６３８４１２３１"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: len(_bookings(store)) == 5)
        new = max(_bookings(store), key=lambda b: b.id)
        assert (new.name_kana, new.phone, new.channel) == (
            "オオサカ ミドリ",
            "06-6384-1231",
            "phone",
        )
        await wait_until(pilot, lambda: table.row_count == 5)

        # Cancel the first (LINE) booking: confirmation, then the resident is notified.
        table.move_cursor(row=0)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.pause(0.6)  # the dialog ignores keys for its first half second
        await pilot.press("y")
        await wait_until(pilot, lambda: _bookings(store)[0].state == "cancelled")
        notices = store.read_sync(rstore.notice_states)
        assert notices == {("staff_cancel", "pending"): 1}

        # 来庁 for the second booking.
        await wait_until(pilot, lambda: "取消" in str(table.get_row_at(0)[5]))
        table.move_cursor(row=1)
        await pilot.press("1")
        await wait_until(pilot, lambda: _bookings(store)[1].state == "attended")

        # 日時変更 of the 13:00 booking (the last row, by time) to 14:00.
        table.move_cursor(row=4)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ChangeModal))
        app.screen.query_one("#change-slot").value = "2027-10-01 14:00"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any(b.slot.endswith("14:00") for b in _bookings(store)))

        # 予約枠の設定: capacity 3 → 5, Friday afternoon only.
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SlotSettingsModal))
        app.screen.query_one("#set-capacity").value = "5"
        await pilot.press("ctrl+s")
        version = lambda: store.read_sync(rstore.current_catalogue)[0]  # noqa: E731
        await wait_until(pilot, lambda: version() == 2)
        await wait_until(
            pilot, lambda: "定員 70" in str(app.screen.query_one("#desk-summary").render())
        )

        # 集計 (counts only).
        await pilot.press("g")
        await wait_until(pilot, lambda: bool(app.screen.query(BarChart)))


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.allow_blocking
def test_desk_snapshot(desk_app, size, snap_compare) -> None:
    """W3: the desk fits the terminal sizes staff use, long kana names included."""
    app, _store = desk_app

    async def run_before(pilot) -> None:
        await _open_desk(pilot, app)
        await pilot.pause(0.4)
        app.screen.set_focus(None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
