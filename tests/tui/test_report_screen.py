"""取扱状況報告書 (Shift+F9): the auditor chooses a period and
saves the signed report PDF (and its signed Markdown) in the export folder; the screen says
where. Against the fake API (flow, snapshots) and the real staff API (a real signed PDF)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pwd
import time
from pathlib import Path

import pytest
from textual.widgets import Button, Input

from kairan_tui.app import make_app
from kairan_tui.screens.report import ReportScreen, fiscal_year, parse_period, previous_month
from kairan_tui.widgets.wrapped import WrappedText
from kairand.api.app import serve
from kairand.config import Config
from kairand.store import staff
from kairand.store.database import Store
from tests.support.pdftext import pdf_text
from tests.support.tui_fake_api import FAKE_REPORT_PDF, NOW
from tests.support.tui_helpers import notifications, wait_until

FAKE_TODAY = NOW.date()  # 2026-04-01


def _result(app) -> str:
    return app.screen.query_one("#report-result", WrappedText).text


@pytest.fixture
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ReportScreen, "today", lambda self: FAKE_TODAY)


def test_periods() -> None:
    assert previous_month(dt.date(2026, 4, 1)) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert previous_month(dt.date(2026, 1, 15)) == (dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert fiscal_year(dt.date(2026, 4, 1)) == (dt.date(2026, 4, 1), dt.date(2026, 4, 1))
    assert fiscal_year(dt.date(2026, 3, 31), back=1) == (dt.date(2024, 4, 1), dt.date(2025, 3, 31))
    assert parse_period("2026/4/1", " 2026-04-30 ") == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    with pytest.raises(ValueError, match="終了日は「2026-04-01」の形"):
        parse_period("2026-04-01", "4月30日")
    with pytest.raises(ValueError, match="開始日が終了日より後"):
        parse_period("2026-05-01", "2026-04-30")


async def test_auditor_saves_the_report_where_the_screen_says(
    fake, app_for, short_tmp: Path, fixed_today
) -> None:
    """S15: the auditor opens 取扱状況報告書 with Shift+F9, starts from last month, picks 前年度,
    and saves; the PDF and the Markdown land in the export folder, the screen names both
    files and the author; a second report of the same period never overwrites the first; a
    mistyped day is refused with what to fix and nothing is written."""
    fake.state.handling_report = True
    app = app_for("takahashi")
    exports = short_tmp / "exports"
    app.export_dir = exports
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f21")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.query("#report-from"))
        assert screen.query_one("#report-from", Input).value == "2026-03-01"
        assert screen.query_one("#report-to", Input).value == "2026-03-31"
        assert str(exports) in screen.query_one("#report-folder", WrappedText).text
        screen.query_one("#preset-last-fy", Button).press()
        await pilot.pause()
        assert screen.query_one("#report-from", Input).value == "2025-04-01"
        assert screen.query_one("#report-to", Input).value == "2026-03-31"

        await pilot.press("ctrl+s")
        first = exports / "handling-report-2025-04-01_2026-03-31.pdf"
        await wait_until(pilot, lambda: "保存しました" in _result(app))
        assert first.read_bytes() == FAKE_REPORT_PDF
        assert "期間：2025-04-01〜2026-03-31" in first.with_suffix(".md").read_text()
        text = _result(app)
        assert str(first) in text and str(first.with_suffix(".md")) in text
        assert "作成者：高橋 三郎（takahashi）" in text

        await pilot.press("ctrl+s")
        second = exports / "handling-report-2025-04-01_2026-03-31-2.pdf"
        await wait_until(pilot, lambda: str(second) in _result(app))
        assert first.exists() and second.exists()

        screen.query_one("#report-to", Input).value = "3月31日"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("終了日は「2026-04-01」の形" in m for m in notifications(app))
        )
        assert sorted(p.name for p in exports.iterdir()) == sorted(
            [first.name, first.with_suffix(".md").name, second.name, second.with_suffix(".md").name]
        )


async def test_a_folder_that_cannot_be_written_is_said_plainly(
    fake, app_for, short_tmp: Path, fixed_today
) -> None:
    """Bad input loses nothing: an export folder that is a file gives a clear error."""
    fake.state.handling_report = True
    app = app_for("takahashi")
    blocked = short_tmp / "not-a-folder"
    blocked.write_text("x")
    app.export_dir = blocked
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f21")
        await wait_until(pilot, lambda: app.screen.query("#report-from"))
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("に保存できませんでした" in m for m in notifications(app))
        )
        assert _result(app) == ""


async def test_not_offered_to_an_author(fake, app_for) -> None:
    """S8: only the auditor's role reaches the report (the key does nothing for others)."""
    fake.state.handling_report = True
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        assert "report" not in app.visible_screens
        await pilot.press("f21")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ReportScreen)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_report_screen_snapshot(size, fake, app_for, snap_compare, fixed_today) -> None:
    """The screen at the sizes staff use: period, presets, the export folder, nothing clipped."""
    fake.state.handling_report = True
    app = app_for("takahashi")
    app.export_dir = Path("/var/lib/kairan/exports")

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f21")
        await wait_until(pilot, lambda: app.screen.query("#report-from"))
        await pilot.pause(0.3)
        app.screen.set_focus(None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_real_daemon_issues_a_signed_pdf_in_the_auditors_name(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """S15: through the real staff API (SO_PEERCRED: the test's OS user as 監査担当), the
    saved PDF is the daemon's signed report, with the auditor named as its author."""
    me = pwd.getpwuid(os.getuid()).pw_name
    await store.write(
        staff.upsert, staff.StaffRecord(me, "監査 花子", ("auditor",)), int(time.time())
    )
    exports = short_tmp / "exports"
    async with serve(config, store):
        app = make_app(config.api.socket, connection_check_seconds=60, export_dir=exports)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: app.me is not None)
            await pilot.press("f21")
            await wait_until(pilot, lambda: app.screen.query("#report-from"))
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: "保存しました" in _result(app), 60)
    pdfs = await asyncio.to_thread(lambda: sorted(exports.glob("*.pdf")))
    assert len(pdfs) == 1
    data = await asyncio.to_thread(pdfs[0].read_bytes)
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    assert "取扱状況報告書" in text and "監査 花子" in text
    markdown = await asyncio.to_thread(pdfs[0].with_suffix(".md").read_text)
    assert "監査 花子" in markdown
