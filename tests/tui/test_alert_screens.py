"""The 緊急配信 screen (F12 from the dashboard) and the 配信サービス screen (Ctrl+F), against the
fake API: fill an approved template, choose districts, confirm with Y; a child field without
the guardian's consent is refused with the reason (K7); template approval from the list."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, SelectionList

from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.screens.alert import AlertScreen, parse_consent_time
from tests.support.tui_helpers import notifications, open_programs, wait_until

SIZE = (80, 24)


async def _open_alert(pilot, app) -> AlertScreen:
    await wait_until(pilot, lambda: app.me is not None)
    await pilot.press("f12")
    await wait_until(pilot, lambda: bool(app.screen.query("#field-advice")))
    assert isinstance(app.screen, AlertScreen)
    return app.screen


def _fill(screen: AlertScreen, **values: str) -> None:
    for code, value in values.items():
        screen.query_one(f"#field-{code}", Input).value = value


FILLED = {
    "when": "4月1日 午後3時ごろ",
    "place": "朝日町の公園付近",
    "what": "児童が声をかけられました。",
    "advice": "複数で下校しましょう。",
}


@pytest.mark.req("K1")
async def test_alert_two_keys_fill_and_send(app_for, fake, monkeypatch) -> None:
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_alert(pilot, app)
        _fill(screen, **FILLED)
        screen.action_send()
        await pilot.pause()
        assert any("学校区を1つ以上" in m for m in notifications(app))
        screen.query_one("#alert-districts", SelectionList).select("asahi")
        from kairan_tui.modals import confirm

        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        screen.action_send()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: any("送信を開始しました" in m for m in notifications(app)))
        sent = fake.call(lambda: fake.state.programs["alerts"])
        assert sent[-1]["by"] == "sato" and sent[-1]["districts"] == ["asahi"]


@pytest.mark.req("K7")
async def test_child_field_without_consent_is_refused_with_reason(
    app_for, fake, monkeypatch
) -> None:
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_alert(pilot, app)
        _fill(screen, **FILLED, child="朝日小学校の児童")
        screen.query_one("#alert-districts", SelectionList).select("asahi")
        from kairan_tui.modals import confirm

        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        screen.action_send()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: any("保護者の同意" in m for m in notifications(app)))
        assert fake.call(lambda: fake.state.programs["alerts"]) == []
        screen.query_one("#consent-by", Input).value = "被害児童の保護者（母）"
        screen.query_one("#consent-at", Input).value = "2026-04-01 09:00"
        app.held_key.stop()  # a second, deliberate Y (not a repeat of the first)
        screen.action_send()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: bool(fake.call(lambda: fake.state.programs["alerts"])))


def test_consent_time_format() -> None:
    assert parse_consent_time("2026-12-01 15:30") is not None
    assert parse_consent_time("12/1 15:30") is None


async def test_programs_screen_approves_a_template(app_for, fake, monkeypatch) -> None:
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_programs(pilot, app, lambda screen: len(screen.templates) == 2)
        from kairan_tui.modals import confirm

        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        table = screen.query_one("#templates-table")
        table.move_cursor(row=1)  # type: ignore[attr-defined]
        screen.action_approve()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot, lambda: any("テンプレートを承認しました" in m for m in notifications(app))
        )
        statuses = fake.call(lambda: [t["status"] for t in fake.state.programs["templates"]])
        assert statuses == ["approved", "approved"]


@pytest.mark.req("K9")
async def test_programs_screen_counts_mail_members_apart(app_for, fake) -> None:
    """Members by mail are a count of their own beside LINE's (never an address), in total
    and per school district; a program without them keeps its single 合計 row."""
    fake.call(lambda: fake.state.programs.__setitem__("registered_mail", "12"))
    per_mail = {
        "朝日小学校区": "12",
        "光小学校区": "<10",
        "緑が丘小学校区": "<10",
        "港小学校区": "<10",
    }
    fake.call(lambda: fake.state.programs.__setitem__("districts_mail", per_mail))
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_programs(
            pilot, app, lambda screen: screen.query_one("#programs-table", DataTable).row_count
        )
        table = screen.query_one("#programs-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert ["市政情報", "合計", "5,204"] in rows
        assert ["子ども安全情報（年度登録）", "LINE", "903"] in rows
        assert ["", "メール", "12"] in rows
        assert ["", "朝日小学校区", "412（メール 12）"] in rows
        assert ["", "緑が丘小学校区", "<10（メール <10）"] in rows
        assert len(app.screen.program_rows) == table.row_count


async def test_approver_sends_an_all_clear(app_for, fake) -> None:
    from textual.widgets import TextArea

    from kairan_tui.modals.follow_up import FollowUpModal

    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_programs(pilot, app, lambda screen: len(screen.alerts) == 1)
        screen.query_one("#alerts-table").focus()
        screen.action_follow_up()
        await wait_until(pilot, lambda: isinstance(app.screen, FollowUpModal))
        modal = app.screen
        assert isinstance(modal, FollowUpModal)
        await wait_until(pilot, lambda: bool(modal.query("#follow-up-body")))
        modal.query_one("#follow-up-body", TextArea).text = "不審者は確保されました。"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("送信を開始しました" in m for m in notifications(app)))
        sent = fake.call(lambda: fake.state.programs["follow_ups"])
        assert sent == [
            {"kind": "all_clear", "body": "不審者は確保されました。", "follows": 7, "by": "ito"}
        ]
