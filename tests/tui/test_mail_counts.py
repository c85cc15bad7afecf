"""Counts per channel on the staff screens: the compose audience panel and a
delivery's history detail say how many are reached by LINE and how many by mail; no address
is ever shown (the API has none to give)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import SelectionList, Static

from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.widgets.bar_chart import BarChart
from kairan_tui.widgets.wrapped import WrappedText
from tests.support.tui_fake_api import sample_content
from tests.support.tui_helpers import wait_until

SIZE = (100, 32)


def rendered(widget: Static) -> str:
    console = Console(file=io.StringIO(), width=96, record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


@pytest.mark.req("K9")
async def test_compose_audience_shows_line_and_mail_counts(app_for, fake) -> None:
    fake.call(lambda: setattr(fake.state, "mail_audience", 56))
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.query("#choice-area"))
        screen.query_one("#choice-area", SelectionList).select("honmachi")
        segment = {"conditions": [{"question": "area", "any_of": ["honmachi"]}]}
        line = fake.call(lambda: fake.state.count(segment))
        expected = f"配信対象人数：{line + 56:,} 人\n（LINE {line:,} 人・メール 56 人）"
        await wait_until(
            pilot, lambda: expected in str(screen.query_one("#audience", Static).render())
        )


@pytest.mark.req("K9")
async def test_history_detail_shows_the_mail_channel_in_counts(app_for, fake) -> None:
    def add() -> int:
        did = fake.state.add_delivery(
            "sato", sample_content("大雨への備え"), status="sent", approver="suzuki"
        )
        fake.state.deliveries[did].update(
            recipient_count=1290,
            sent_count=1288,
            failed_count=1,
            progress=1.0,
            mail={"recipients": 56, "sent": 54, "failed": 1, "unconfirmed": 1},
        )
        return did

    did = fake.call(add)
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
        await pilot.press("f5")
        history = app.screen
        await wait_until(pilot, lambda: getattr(history, "selected", None) is not None)
        assert history.selected.id == did
        await wait_until(
            pilot, lambda: "配信経路" in rendered(history.query_one("#history-content", Static))
        )
        text = rendered(history.query_one("#history-content", Static))
        assert "LINE 1,234 人・メール 56 人" in text
        assert "送信済み 54 人・失敗 1 人・送信待ち 0 人・要確認 1 人（再送しません）" in text
        assert "@" not in text


@pytest.mark.req("K9")
async def test_dashboard_counts_mail_subscribers_apart(app_for, fake) -> None:
    """The 登録者 card counts LINE; the notes give the mail subscribers as the daemon shows
    them (suppressed below k); without the mail channel nothing about mail appears."""
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.screen.query("#stat-registered .stat-value"))
        notes = app.screen.query_one("#stat-notes", WrappedText)
        label = app.screen.query_one("#stat-registered .stat-label", Static)
        await wait_until(pilot, lambda: "人" in rendered(label.parent.query_one(".stat-value")))
        assert rendered(label).strip() == "登録者" and "メール" not in notes.text

        fake.call(lambda: setattr(fake.state, "mail_registered", 56))
        await pilot.press("r")
        await wait_until(pilot, lambda: "メール配信の登録者は 56 人です" in notes.text)
        assert rendered(label).strip() == "登録者（LINE）"
        fake.call(lambda: setattr(fake.state, "mail_registered", 3))
        await pilot.press("r")
        await wait_until(pilot, lambda: "メール配信の登録者は <10 人です" in notes.text)


@pytest.mark.req("K9")
@pytest.mark.req("W4")
async def test_statistics_switch_between_line_and_mail_answers(app_for, fake) -> None:
    fake.call(lambda: setattr(fake.state, "mail_registered", 12))
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
        await pilot.press("f6")
        summary = app.screen.query_one("#statistics-summary", Static)

        def text() -> str:
            return rendered(summary).replace("\n", "")

        def largest() -> int:
            counts = [n for c in app.screen.query(BarChart) for _, n, _ in c._rows if n]
            return max(counts, default=0)

        await wait_until(pilot, lambda: "LINEの登録者" in text())
        assert "メール配信の登録者 12 人の回答は m キーで表示します" in text()
        line_total = fake.call(lambda: len(fake.state.residents))
        await wait_until(pilot, lambda: largest() > 12)  # LINE's answers
        await pilot.press("m")
        await wait_until(pilot, lambda: text().startswith("メール配信の登録者 12 人の回答"))
        assert f"LINEの登録者 {line_total:,} 人の回答は m キーで表示します" in text()
        # The charts now count the 12 mail subscribers only (most cells below k: "<10").
        await wait_until(pilot, lambda: app.screen.query(BarChart) and largest() <= 12)
        shown = [d for c in app.screen.query(BarChart) for _, _, d in c._rows]
        assert "<10" in shown
        await pilot.press("m")
        await wait_until(pilot, lambda: text().startswith("LINEの登録者"))


@pytest.mark.req("K9")
async def test_statistics_without_mail_offer_no_switch(app_for, fake) -> None:
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
        await pilot.press("f6")
        summary = app.screen.query_one("#statistics-summary", Static)
        await wait_until(pilot, lambda: rendered(summary).startswith("登録者"))
        assert app.screen.check_action("switch_channel", ()) is False
        await pilot.press("m")
        await pilot.pause()
        assert rendered(summary).startswith("登録者") and "メール" not in rendered(summary)
