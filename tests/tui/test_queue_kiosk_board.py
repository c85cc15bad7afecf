"""The kiosk (発券機) and the board (呼出表示盤) under Pilot against the REAL staff API and
SQLCipher store: a ticket from the keypad, printed through python-escpos's Dummy printer and
read back from the bytes (number, Shift_JIS service name, the QR raster equal to segno's matrix
of the LINE link whose token ties the ticket in the chat); without a printer the QR code is on
screen; the kiosk role can do nothing else; the board follows calls live. Snapshots 80×24 and
120×36."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import segno
from escpos.printer import Dummy

from kairan_tui.board import BoardApp
from kairan_tui.client import ApiError, KairanApi
from kairan_tui.kiosk import KioskApp, TicketScreen
from kairan_tui.kiosk_print import QR_SCALE
from kairan_tui.main import training_scan_file
from kairand.config import Config
from kairand.queue import core, service
from kairand.store import queue as qstore
from kairand.store import residents
from kairand.store.database import Store
from tests.support.queue_api import NOW, QUEUE, ThreadedQueueApi, with_queue
from tests.support.tui_helpers import wait_until


@pytest.fixture
def queue_api(config: Config, store: Store) -> Iterator[tuple[ThreadedQueueApi, Path, Store]]:
    cfg = with_queue(config)
    api = ThreadedQueueApi(cfg, store, "hakken")
    try:
        yield api, Path(cfg.api.socket), store
    finally:
        api.close()


def raster(data: bytes) -> list[list[int]]:
    """The first GS v 0 raster image in ESC/POS bytes, as rows of 0/1 pixels."""
    at = data.index(b"\x1dv0")
    width_bytes = data[at + 4] + 256 * data[at + 5]
    height = data[at + 6] + 256 * data[at + 7]
    body = data[at + 8 : at + 8 + width_bytes * height]
    return [
        [(body[y * width_bytes + x // 8] >> (7 - x % 8)) & 1 for x in range(width_bytes * 8)]
        for y in range(height)
    ]


def qr_from_raster(pixels: list[list[int]], size: int) -> list[list[int]]:
    """Sample each module's centre (segno: 4-module quiet zone, QR_SCALE dots per module)."""
    half = QR_SCALE // 2
    return [
        [pixels[(4 + r) * QR_SCALE + half][(4 + c) * QR_SCALE + half] for c in range(size)]
        for r in range(size)
    ]


@pytest.mark.req("W2")
@pytest.mark.allow_blocking
async def test_kiosk_prints_a_ticket_whose_qr_links_the_chat(queue_api) -> None:
    _api, socket, store = queue_api
    printer = Dummy()
    app = KioskApp(KairanApi(socket), printer)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.board is not None and len(app.query("Button")) == 2)
        await pilot.press("1")
        await wait_until(pilot, lambda: isinstance(app.screen, TicketScreen))
        screen = app.screen
        assert isinstance(screen, TicketScreen)
        assert screen.issued.label == "A-001" and screen.printed
        assert not screen.query("#qr")  # printed: the QR is on paper, not on screen
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, TicketScreen))
    data = printer.output
    assert b"A-001\n" in data
    assert "保育所等利用申込".encode("shift_jis") in data
    assert "2026年10月01日 10:00 発行".encode("shift_jis") in data
    url = screen.issued.qr_url
    assert url is not None and url.startswith("https://line.me/R/oaMessage/%40kairan/?")
    matrix = [list(row) for row in segno.make(url, error="m").matrix]
    assert qr_from_raster(raster(data), len(matrix)) == matrix
    assert data.rstrip().endswith(b"\x1dVA\x00") or b"\x1dV" in data[-8:]  # cut
    # The resident scans it: the pre-filled message carries the one-time token.
    token = core.parse_token(unquote(urlsplit(url).query))
    assert token is not None
    rid = store.write_sync(residents.start, "U" + "5" * 32, 0)
    linked = store.write_sync(service.link_token, QUEUE, token, rid, NOW + 30)
    assert linked.ticket.label == "A-001"


@pytest.mark.req("W2")
@pytest.mark.allow_blocking
async def test_kiosk_without_printer_shows_the_qr_and_may_do_nothing_else(queue_api) -> None:
    _api, socket, store = queue_api
    client = KairanApi(socket)
    app = KioskApp(client, None)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.query("Button")) == 2)
        await pilot.click("#svc-juminhyo")
        await wait_until(pilot, lambda: isinstance(app.screen, TicketScreen))
        qr = app.screen.query_one("#qr")
        assert "█" in str(qr.render())
        assert app.screen.issued.label == "B-001"  # type: ignore[attr-defined]
    # The kiosk's role issues tickets and reads the board; the desk and statistics refuse it.
    for call in (client.queue_desk(), client.queue_call("hoiku", 1), client.dashboard()):
        with pytest.raises(ApiError) as exc:
            await call
        assert exc.value.status == 403
    await client.close()
    assert [t.channel for t in store.read_sync(qstore.of_day, "2026-10-01", "juminhyo")] == [
        "kiosk"
    ]


@pytest.mark.req("W2")
@pytest.mark.req("W3")
@pytest.mark.allow_blocking
async def test_board_follows_calls_live(queue_api) -> None:
    api, socket, store = queue_api
    for i in range(4):
        store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", NOW + i)
    api.user = "hyouji"
    app = BoardApp(KairanApi(socket))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.board is not None)
        assert app.board is not None and app.board.calling == []
        assert "お待ち 4人" in str(app.query(".service").first().render())
        counter = KairanApi(socket)
        api.user = "madoguchi"
        called = await counter.queue_call("hoiku", 3)
        api.user = "hyouji"
        assert called.label == "A-001"
        await wait_until(pilot, lambda: app.board is not None and len(app.board.calling) == 1)
        assert app.board.calling[0].label == "A-001" and app.board.calling[0].counter == 3
        # The board rebuilds its rows on each event: between removal and mount there are none.
        await wait_until(pilot, lambda: "お待ち 3人" in _first_service(app))
        assert "次の番号：A-002" in _first_service(app)
        await counter.close()


def _first_service(app: BoardApp) -> str:
    rows = app.query(".service")
    return str(rows.first().render()) if rows else ""


def _seed_board(store: Store) -> None:
    for i in range(6):
        store.write_sync(service.issue, QUEUE, "hoiku", "kiosk", NOW + i)
    store.write_sync(service.issue, QUEUE, "juminhyo", "kiosk", NOW + 10)
    store.write_sync(service.call_next, QUEUE, "hoiku", 2, NOW + 20)
    store.write_sync(service.call_next, QUEUE, "hoiku", 3, NOW + 21)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_board_snapshot(queue_api, size, snap_compare) -> None:
    api, socket, store = queue_api
    _seed_board(store)
    api.user = "hyouji"
    app = BoardApp(KairanApi(socket))

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.board is not None)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_kiosk_menu_snapshot(queue_api, size, snap_compare) -> None:
    _api, socket, store = queue_api
    _seed_board(store)
    app = KioskApp(KairanApi(socket), None)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: len(app.query("Button")) == 2)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.req("W2")
@pytest.mark.allow_blocking
async def test_training_kiosk_leaves_the_qr_link_for_the_simulated_phone(
    queue_api, tmp_path: Path
) -> None:
    """The demo's kiosk (training mode) writes each ticket's QR link where kairan-sim-chat's
    `scan` reads it; outside training mode the setting is ignored."""
    _api, socket, _store = queue_api
    scan = tmp_path / "run" / "kiosk-qr.txt"
    app = KioskApp(KairanApi(socket), None, scan_file=scan)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.query("Button")) == 2)
        await pilot.press("1")
        await wait_until(pilot, lambda: isinstance(app.screen, TicketScreen))
        issued = app.screen.issued  # type: ignore[attr-defined]
    assert scan.read_text(encoding="utf-8") == f"{issued.qr_url}\n"
    assert scan.stat().st_mode & 0o777 == 0o600
    config = tmp_path / "kairan.toml"
    table = '[kiosk]\ntraining_scan_file = "run/kiosk-qr.txt"\n'
    config.write_text("[daemon]\ntraining_mode = true\n" + table, encoding="utf-8")
    assert training_scan_file(config) == scan.resolve()
    config.write_text("[daemon]\ntraining_mode = false\n" + table, encoding="utf-8")
    assert training_scan_file(config) is None
