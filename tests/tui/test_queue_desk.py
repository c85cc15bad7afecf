"""The calling desk (呼出, W3/W4) under Pilot against the REAL staff API and store, keys only:
call the next (the booked resident first), recall up to the limit, absent, serve and finish,
transfer, pause the counter, switch service and counter, the statistics chart and the CSV;
snapshots at 80×24 and 120×36."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kairan_tui.app import make_app
from kairand.config import Config
from kairand.queue import service
from kairand.store import queue as qstore
from kairand.store.database import Store
from tests.support.queue_api import NOW, QUEUE, ThreadedQueueApi, with_queue
from tests.support.tui_helpers import wait_until


@pytest.fixture
def desk(config: Config, store: Store) -> Iterator[tuple[ThreadedQueueApi, object, Store]]:
    cfg = with_queue(config)
    for i in range(5):
        store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", NOW + i)
    # A-004 is a booked resident arriving in their slot: called first.
    store.write_sync(lambda c: c.execute("UPDATE queue_tickets SET priority = 1 WHERE number = 4"))
    store.write_sync(service.issue, QUEUE, "juminhyo", "kiosk", NOW + 9)
    api = ThreadedQueueApi(cfg, store, "madoguchi")
    try:
        yield api, make_app(Path(cfg.api.socket), connection_check_seconds=60.0), store
    finally:
        api.close()


async def _open(pilot, app) -> None:
    from kairan_tui.screens.queue_desk import QueueDeskScreen

    await wait_until(pilot, lambda: app.me is not None)
    await pilot.press("f11")
    await wait_until(
        pilot, lambda: isinstance(app.screen, QueueDeskScreen) and app.screen.desk is not None
    )


def _states(store: Store) -> dict[str, tuple[str, int | None]]:
    return {
        t.label: (t.state, t.counter) for t in store.read_sync(qstore.of_day, "2026-10-01", None)
    }


@pytest.mark.req("W3")
@pytest.mark.req("W4")
@pytest.mark.allow_blocking
async def test_desk_calls_recalls_marks_absent_transfers_and_pauses(
    desk, tmp_path, monkeypatch
) -> None:
    from kairan_tui.screens import queue_desk
    from kairan_tui.screens.queue_desk import QueueStatsModal, TransferModal

    monkeypatch.setattr(queue_desk, "EXPORT_DIR", tmp_path)
    _api, app, store = desk
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(pilot, app)
        screen = app.screen
        assert screen.counter == 1
        await pilot.press("n")
        await wait_until(pilot, lambda: _states(store)["A-004"] == ("called", 1))
        await pilot.press("n")  # still A-004 at this counter; another call takes A-001
        await wait_until(pilot, lambda: _states(store)["A-001"] == ("called", 1))
        await wait_until(
            pilot, lambda: screen.here() is not None and screen.here().label == "A-001"
        )
        # Absent needs the recalls first (the daemon's message is shown), then works.
        await pilot.press("a")
        await wait_until(pilot, lambda: any("再呼出" in n.message for n in app._notifications))
        ticket_id = screen.here().id

        def recalls() -> int:
            ticket = store.read_sync(qstore.get, ticket_id)
            assert ticket is not None
            return ticket.recalls

        await pilot.press("r")
        await wait_until(pilot, lambda: recalls() == 1)
        await pilot.press("r")
        await wait_until(pilot, lambda: recalls() == 2)
        await pilot.press("a")
        await wait_until(pilot, lambda: _states(store)["A-001"][0] == "absent")
        # A-004 is still called at counter 1: serve, then transfer it to 住民票.
        await wait_until(
            pilot, lambda: screen.here() is not None and screen.here().label == "A-004"
        )
        await pilot.press("s")
        await wait_until(pilot, lambda: _states(store)["A-004"][0] == "serving")
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, TransferModal))
        await pilot.press("enter")
        await wait_until(pilot, lambda: _states(store)["A-004"][0] == "transferred")
        assert _states(store)["B-002"] == ("waiting", None)
        # Switch to 住民票 (counter 4): the transferred ticket goes first.
        await pilot.press("tab")
        await wait_until(pilot, lambda: screen.counter == 4)
        await pilot.press("n")
        await wait_until(pilot, lambda: _states(store)["B-002"] == ("called", 4))
        await pilot.press("s")
        await wait_until(pilot, lambda: _states(store)["B-002"][0] == "serving")
        await pilot.press("d")
        await wait_until(pilot, lambda: _states(store)["B-002"][0] == "done")
        # Pause counter 4: calling is refused until it is resumed.
        await pilot.press("p")
        await wait_until(pilot, lambda: store.read_sync(qstore.paused_counters) == {4})
        await pilot.press("n")
        await wait_until(pilot, lambda: any("休止中" in n.message for n in app._notifications))
        assert _states(store)["B-001"] == ("waiting", None)
        await pilot.press("p")
        await wait_until(pilot, lambda: store.read_sync(qstore.paused_counters) == set())
        # Counter keys cycle within the service's counters; the chart and the CSV.
        await pilot.press("tab")
        await wait_until(pilot, lambda: screen.counter == 1)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: screen.counter == 2)
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueStatsModal))
        await pilot.press("escape")
        await pilot.press("e")
        csv_path = tmp_path / "queue-statistics-2026-10-01.csv"
        await wait_until(pilot, csv_path.exists)
    data = csv_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "発券数".encode() in data


@pytest.mark.req("W3")
@pytest.mark.allow_blocking
async def test_desk_follows_the_event_stream_not_a_timer(desk, config: Config, monkeypatch) -> None:
    """A ticket issued elsewhere (the kiosk, LINE, another desk) and a call from another
    counter appear at once: the desk follows the daemon's board stream (its timer is only a
    safety net, pushed out of reach here)."""
    from kairan_tui.client import KairanApi
    from kairan_tui.screens import queue_desk

    monkeypatch.setattr(queue_desk, "POLL_SECONDS", 3600.0)
    _api, app, _store = desk
    elsewhere = KairanApi(Path(config.api.socket))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await _open(pilot, app)
            screen = app.screen
            service = screen.service
            assert service is not None and len(service.waiting) == 5
            issued = await elsewhere.queue_issue("hoiku")
            await wait_until(
                pilot, lambda: issued.label in [t.label for t in screen.service.waiting]
            )
            called = await elsewhere.queue_call("hoiku", 3)
            await wait_until(
                pilot,
                lambda: called.label in str(screen.query_one("#queue-calling").render()),
            )
    finally:
        await elsewhere.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_desk_snapshot(desk, size, snap_compare) -> None:
    _api, app, store = desk
    store.write_sync(service.call_next, QUEUE, "hoiku", 1, NOW + 30)
    store.write_sync(service.call_next, QUEUE, "hoiku", 2, NOW + 31)

    async def run_before(pilot) -> None:
        await _open(pilot, app)
        await pilot.pause(0.4)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
