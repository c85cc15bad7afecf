"""Screen behaviour against the fake API: roles, live feedback, confirmations, errors,
reconnection, survey editing, audit verification, help."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TextArea,
)

from kairan_tui.app import make_app
from kairan_tui.modals import confirm
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.reject import RejectModal
from kairan_tui.screens.approvals import ApprovalsScreen
from kairan_tui.screens.base import KairanScreen
from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.screens.help import HelpScreen
from kairan_tui.widgets.message_editor import MessageEditor
from kairan_tui.widgets.top_bar import ConnectionBanner, TopBar
from kairan_tui.widgets.wrapped import WrappedText
from tests.support.tui_fake_api import FakeServer, demo_state, sample_content
from tests.support.tui_helpers import notifications, wait_until

SIZE = (100, 32)


def text_of(widget: Widget) -> str:
    return str(widget.render())


async def signed_in(pilot, app) -> None:
    await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
    await pilot.pause()  # the mode switch and its mount messages are processed


@pytest.mark.parametrize(
    ("user", "visible"),
    [
        ("sato", ["dashboard", "compose", "history", "statistics", "alert", "programs"]),
        ("suzuki", ["dashboard", "approvals", "history", "statistics", "programs"]),
        ("tanaka", ["dashboard", "statistics", "survey", "staff", "programs"]),
        ("takahashi", ["dashboard", "history", "statistics", "audit", "programs"]),
    ],
)
async def test_screens_follow_roles(user, visible, app_for):
    """S7, S8: a staff member sees only the screens their roles allow, in the navigation bar,
    the help and the command palette (which also finds a screen by its kana reading); the key
    of a hidden screen does nothing but explain."""
    app = app_for(user)
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        assert app.visible_screens == visible
        nav = text_of(app.screen.query_one(TopBar).query_one("#nav-line", Static))
        for name, title in (
            ("compose", "配信作成"),
            ("approvals", "承認待ち"),
            ("survey", "アンケート設定"),
            ("audit", "監査ログ"),
        ):
            assert (title in nav) == (name in visible)
        hidden = {"compose": "f3", "approvals": "f4", "survey": "f7", "audit": "f9"}
        for name, key in hidden.items():
            if name not in visible:
                before = app.screen
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is before
                assert any("権限がありません" in m for m in notifications(app))
                break
        from kairan_tui.commands import ScreenCommands

        provider = ScreenCommands(app.screen)
        titles = [hit.text async for hit in provider.discover()]
        assert len(titles) == len(visible)
        assert all(str(t).endswith("を開く") for t in titles)
        # Kana typed before conversion finds the screen too (only if allowed).
        found = [hit async for hit in provider.search("かんさ")]
        assert bool(found) == ("audit" in visible)


async def open_compose(pilot, app) -> ComposeScreen:
    await signed_in(pilot, app)
    await pilot.press("f3")
    await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
    screen = app.screen
    await wait_until(pilot, lambda: screen.query("#choice-topics"))
    return screen


async def test_compose_refuses_what_line_cannot_send(app_for):
    """G1, G3: the counter counts UTF-16 units (an emoji is 2), turns red past 5,000, and
    承認依頼 refuses a message over the limit saying what to do. Choosing 機密性区分 2 or 3
    shows why it cannot go through LINE, disables テスト送信 and 承認依頼 (the shortcut refuses
    too); back to class 1 enables them again."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compose(pilot, app)
        editor = screen.query_one("#message-1", MessageEditor)
        area = editor.query_one(TextArea)
        area.focus()
        await pilot.press("a", "b")
        area.insert("🎉")
        await pilot.pause()
        counter = editor.query_one(".counter")
        assert text_of(counter).startswith("4 / 5,000")
        area.text = "あ" * 4999 + "🎉"
        await pilot.pause()
        assert text_of(counter).startswith("5,001 / 5,000")
        assert counter.has_class("over")
        screen.query_one("#title", Input).value = "長すぎるお知らせ"
        screen.query_one("#segment-all", Checkbox).value = True
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert any("5,000文字を超えています" in m for m in notifications(app))
        area.text = ""
        reason = screen.query_one("#class-blocked", Static)
        assert not reason.display
        for klass in (2, 3):
            screen.query_one("#confidentiality", Select).value = klass
            await pilot.pause()
            assert reason.display
            assert "LINEで配信できません" in text_of(reason)
            assert screen.query_one("#submit", Button).disabled
            assert screen.query_one("#test-send", Button).disabled
        screen.query_one("#title", Input).value = "内部向け資料"
        screen.query_one("#message-1 TextArea", TextArea).text = "内部情報です"
        screen.query_one("#segment-all", Checkbox).value = True
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert any("機密性区分2・3" in m for m in notifications(app))
        screen.query_one("#confidentiality", Select).value = 1
        await pilot.pause()
        assert not screen.query_one("#submit", Button).disabled


async def test_audience_count_preview_and_test_recipient_code(app_for, fake):
    """N2, W4, S5: the audience count follows the segment builder and equals the API's count;
    several quick changes cause one count request, not one per change; the preview shows the
    messages as bubbles; テスト送信先の登録 shows the one-time code and tells the staff member
    to send it from their own LINE to the official account."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compose(pilot, app)
        # No wait for a count the opening itself may start: at most one more request falls
        # into the window below, still fewer than the four changes would make undebounced.
        calls_before = fake.call(lambda: fake.state.audience_calls)
        areas = screen.query_one("#choice-area", SelectionList)
        # Four changes in quick succession (as fast clicking would make them).
        for code in ("honmachi", "ekimae", "kitamachi", "minamimachi"):
            areas.select(code)
        segment = {
            "conditions": [
                {"question": "area", "any_of": ["honmachi", "ekimae", "kitamachi", "minamimachi"]}
            ]
        }
        expected = fake.call(lambda: fake.state.count(segment))
        await wait_until(
            pilot, lambda: f"{expected:,} 人" in text_of(screen.query_one("#audience"))
        )
        calls = fake.call(lambda: fake.state.audience_calls) - calls_before
        assert 1 <= calls < 4
        summary = text_of(screen.query_one("#segment-summary"))
        assert "地域：本町・駅前・北町・南町" in summary
        screen.query_one("#message-1 TextArea", TextArea).text = "健診のお知らせ"
        await pilot.pause()
        bubbles = [text_of(b) for b in screen.query(".bubble")]
        assert bubbles == ["健診のお知らせ"]
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: app.screen.query("#test-code"))
        assert text_of(app.screen.query_one("#test-code")) == "KAIRAN-482913"
        body = app.screen.query_one(".dialog-body", WrappedText).text
        assert "研修用スマートフォンからこのコードを公式アカウントに送信します" in body


async def test_confirmation_ignores_key_repeat_and_enter_never_confirms(app_for, fake, monkeypatch):
    """S7: 承認 asks for confirmation with the audience count; a Y pressed within 0.5 s of the
    dialog opening (key repeat) is ignored; Enter cancels (the confirm button takes no focus);
    only a deliberate Y approves."""
    app = app_for("suzuki")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f4")
        await wait_until(pilot, lambda: getattr(app.screen, "audience", None) is not None)
        approvals = app.screen
        now = [1000.0]
        monkeypatch.setattr(confirm, "_clock", lambda: now[0])
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        now[0] += 0.3  # key repeat arrives well within the guard
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal), "key repeat must not confirm"
        audience = text_of(app.screen.query_one("#confirm-audience"))
        assert f"{approvals.audience:,} 人" in audience
        assert not app.screen.query_one("#confirm", Button).can_focus
        now[0] += 1.0
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is approvals
        assert fake.call(lambda: fake.state.deliveries[2]["status"]) == "pending_approval"
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        now[0] += 1.0
        await pilot.press("y")
        await wait_until(pilot, lambda: any("承認しました" in m for m in notifications(app)))
        assert fake.call(lambda: fake.state.deliveries[2]["status"]) in ("sending", "sent")


async def test_enter_held_on_the_confirmation_does_not_reach_the_form(app_for, monkeypatch):
    """S7, N2: an Enter held down on the 承認依頼 confirmation cancels it, and its further
    repeats do not reach the form underneath: the 配信対象 list that had the focus keeps the
    option the author chose (each repeat used to toggle it, so the delivery went for approval
    with another audience) and the message that had the focus gets no new lines. After a pause,
    Enter works normally again."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compose(pilot, app)
        now = [1000.0]
        monkeypatch.setattr(confirm, "_clock", lambda: now[0])
        screen.query_one("#title", Input).value = "健診のお知らせ"
        editor = screen.query_one("#message-1 TextArea", TextArea)
        editor.text = "健診のお知らせ"
        areas = screen.query_one("#choice-area", SelectionList)
        areas.focus()
        areas.highlighted = 0
        await pilot.press("space")
        chosen = list(areas.selected)
        assert chosen
        await wait_until(pilot, lambda: screen.segment_choice.segment is not None)
        chosen_segment = screen.segment_choice.segment

        async def hold_enter_on_confirmation() -> None:
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            opened = now[0]
            for step in range(1, 26):  # 25 repeats, 30 ms apart: the guard, a cancel, the rest
                now[0] = opened + 0.03 * step
                await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen is screen)

        await hold_enter_on_confirmation()
        await pilot.pause()
        assert list(areas.selected) == chosen, "a held Enter changed the 配信対象"
        assert screen.segment_choice.segment == chosen_segment

        editor.focus()
        await hold_enter_on_confirmation()
        await pilot.pause()
        assert editor.text == "健診のお知らせ", "a held Enter reached the message"

        now[0] += 2.0  # the key was released; a new press is the staff member's own
        await pilot.press("enter")
        assert editor.text.count("\n") == 1


async def test_author_cannot_approve_own_delivery(app_for, fake):
    """S7 (four eyes): a staff member who is author and approver is told to ask another approver
    when they try to approve their own delivery; nothing is sent."""
    did = fake.call(
        lambda: fake.state.add_delivery(
            "ito", sample_content("自分の配信"), status="pending_approval"
        )
    )
    app = app_for("ito")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f4")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        assert app.screen.selected.id == did  # newest first
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert any("ほかの承認者" in m for m in notifications(app))
        assert fake.call(lambda: fake.state.deliveries[did]["status"]) == "pending_approval"


async def test_reject_sends_the_comment_back(app_for, fake):
    """S7: 差し戻し needs a comment; the delivery goes back to draft with it."""
    app = app_for("suzuki")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f4")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, RejectModal))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RejectModal)
        assert any("理由を入力" in m for m in notifications(app))
        app.screen.query_one(TextArea).text = "日付を確認してください。"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("差し戻しました" in m for m in notifications(app)))
        delivery = fake.call(lambda: dict(fake.state.deliveries[2]))
        assert delivery["status"] == "draft"
        assert delivery["reject_comment"] == "日付を確認してください。"


async def test_cancel_a_sending_delivery_after_confirmation(app_for, fake, monkeypatch):
    """S7: 配信中止 of a delivery being sent asks for confirmation showing how many residents
    have not received it yet, then stops it."""

    def sending() -> int:
        did = fake.state.add_delivery("sato", sample_content("止める配信"), status="sending")
        fake.state.deliveries[did].update(recipient_count=300, sent_count=120, progress=0.4)
        return did

    did = fake.call(sending)
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f5")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        history = app.screen
        assert history.selected.id == did
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "180 人" in text_of(app.screen.query_one("#confirm-audience"))
        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        await pilot.press("y")
        await wait_until(pilot, lambda: any("中止しました" in m for m in notifications(app)))
        assert fake.call(lambda: fake.state.deliveries[did]["status"]) == "cancelled"


async def test_progress_bar_follows_a_delivery_until_sent(app_for, fake):
    """S5: while a delivery is sent the history shows a live progress bar and counts (SSE
    events with polling as a safety net), then 配信済み and a notification."""
    from tests.support.tui_fake_api import _send

    def sending() -> int:
        did = fake.state.add_delivery("sato", sample_content("進み具合"), status="sending")
        fake.state.deliveries[did].update(recipient_count=400)
        fake.state.send_step = 25
        return did

    def start_sending(did: int) -> None:
        asyncio.get_running_loop().create_task(_send(fake.state, fake.state.deliveries[did]))

    did = fake.call(sending)
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f5")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        history = app.screen
        assert history.selected.id == did
        bar = history.query_one("#progress")
        seen: set[float] = set()

        def done() -> bool:
            seen.add(bar.percentage or 0.0)
            return history.selected is not None and history.selected.status == "sent"

        # Sending starts only once the screen watches it, so a slow machine sees it too.
        await wait_until(pilot, lambda: fake.call(lambda: len(fake.state.listeners)) > 0)
        fake.call(lambda: start_sending(did))
        await wait_until(pilot, done, limit=20)
        assert bar.percentage == 1.0
        assert any(0.0 < p < 1.0 for p in seen), seen
        assert "送信済み 400 人" in text_of(history.query_one("#history-counts"))
        assert any("配信済み" in m for m in notifications(app))


async def test_lost_daemon_is_explained_and_reconnected(short_tmp: Path):
    """When the daemon goes away the screen says so in Japanese (banner and notification)
    without freezing; when it is back the app reconnects by itself and says so."""
    state = demo_state()
    socket = short_tmp / "api.sock"
    server = FakeServer(state, "sato", socket)
    await server.start()
    app = make_app(socket, connection_check_seconds=0.2, retry_seconds=0.2)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(pilot, app)
            await server.stop()
            await wait_until(pilot, lambda: not app.connected)
            banner = app.screen.query_one(ConnectionBanner)
            assert banner.has_class("-lost")
            assert "接続できません" in text_of(banner)
            await pilot.press("f5")  # still responsive while the daemon is away
            await wait_until(
                pilot,
                lambda: (
                    isinstance(app.screen, KairanScreen) and app.screen.SCREEN_NAME == "history"
                ),
            )
            server = FakeServer(state, "sato", socket)
            await server.start()
            await wait_until(pilot, lambda: app.connected)
            await pilot.pause(0.1)
            assert not app.screen.query_one(ConnectionBanner).has_class("-lost")
            assert any("再接続しました" in m for m in notifications(app))
    finally:
        await server.stop()


async def test_waits_for_a_daemon_that_is_not_up_yet(short_tmp: Path):
    """Started before the daemon, the app says it cannot connect and where, then signs in
    as soon as the daemon is there."""
    socket = short_tmp / "late.sock"
    app = make_app(socket, connection_check_seconds=60, retry_seconds=0.1)
    server = FakeServer(demo_state(), "sato", socket)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                pilot,
                lambda: "接続できません" in text_of(app.screen.query_one("#connecting-message")),
            )
            message = text_of(app.screen.query_one("#connecting-message"))
            assert str(socket) in message
            await server.start()
            await signed_in(pilot, app)
            assert isinstance(app.screen, KairanScreen) and app.screen.SCREEN_NAME == "dashboard"
    finally:
        await server.stop()


async def test_api_errors_become_notifications_that_say_what_to_do(app_for, fake, monkeypatch):
    """N5: an API refusal (here a survey saved by someone else meanwhile: 409) is shown as a
    notification with the daemon's Japanese explanation, and nothing is lost on screen."""
    app = app_for("tanaka")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f7")
        await wait_until(pilot, lambda: app.screen.query("#question-list ListItem"))
        screen = app.screen
        screen.query_one("#q-title", Input).value = "生まれ年"
        fake.call(lambda: setattr(fake.state, "survey_version", 5))
        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot, lambda: any("先にアンケートを保存しました" in m for m in notifications(app))
        )
        assert screen.query_one("#q-title", Input).value == "生まれ年"


async def test_survey_edit_saves_a_new_version_keeping_option_codes(app_for, fake, monkeypatch):
    """N2, S1, S16: an admin rewords an option, adds one, reorders questions and edits a
    purpose; saving makes a new version in which the old option codes are kept; the preview
    shows the conversation a resident will have, purpose included."""
    app = app_for("tanaka")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f7")
        await wait_until(pilot, lambda: app.screen.query("#question-list ListItem"))
        screen = app.screen
        screen.query_one("#question-list").index = 1  # 性別
        await pilot.pause()
        options = screen.query_one("#q-options", TextArea)
        assert options.text.splitlines()[0] == "女性 [female]"
        options.text = options.text.replace("その他 [other]", "その他・回答しない [other]")
        options.text += "\n答えたくない"
        screen.query_one("#q-purpose", TextArea).text = "性別に応じた検診のご案内のため"
        screen.query_one("#move-up", Button).press()
        await wait_until(
            pilot, lambda: "性別" in text_of(screen.query("#question-list Label").first())
        )
        screen.query_one("#tab-preview")
        screen.query_one("#survey-tabs", TabbedContent).active = "tab-preview"
        await wait_until(
            pilot,
            lambda: (
                "性別に応じた検診のご案内のため"
                in text_of(screen.query_one("#conversation-preview"))
            ),
        )
        preview = text_of(screen.query_one("#conversation-preview"))
        assert "［その他・回答しない］" in preview
        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot, lambda: any("第2版として公開しました" in m for m in notifications(app))
        )
        survey = fake.call(lambda: fake.state.survey)
        assert [q["code"] for q in survey["questions"]][:2] == ["gender", "birth_year"]
        gender = survey["questions"][0]
        assert [(o["code"], o["label"]) for o in gender["options"]] == [
            ("female", "女性"),
            ("male", "男性"),
            ("other", "その他・回答しない"),
            ("opt_1", "答えたくない"),
        ]
        assert gender["purpose"] == "性別に応じた検診のご案内のため"


async def test_audit_filter_and_verify(app_for, fake):
    """S8: the auditor filters the operation log by staff member and runs 「検証」, which
    reports an intact chain with the number of entries."""
    app = app_for("takahashi")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f9")
        await wait_until(pilot, lambda: app.screen.query_one("#audit-table").row_count > 0)
        screen = app.screen
        field = screen.query_one("#filter-actor", Input)
        field.value = "sato"
        field.focus()
        await pilot.press("enter")  # Enter in a filter field applies it
        table = screen.query_one("#audit-table", DataTable)

        def actors() -> set[object]:
            return {table.get_row_at(i)[2] for i in range(table.row_count)}

        await wait_until(pilot, lambda: actors() == {"sato"})  # unfiltered, others appear too
        await pilot.press("ctrl+g")
        await wait_until(
            pilot,
            lambda: "改ざんは見つかりませんでした" in text_of(screen.query_one("#verify-result")),
        )


async def test_help_lists_every_binding(app_for):
    """F1 (and ?) opens help listing the screen keys the caller may use, every binding of
    the current screen, and the common keys; Esc closes it."""
    app = app_for("suzuki")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalsScreen))
        origin = app.screen
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = " ".join(text_of(s) for s in app.screen.query(Static))
        text += " ".join(w.text for w in app.screen.query(WrappedText))
        for binding in origin.BINDINGS:
            assert binding.description in text
        for title in ("ダッシュボード", "承認待ち", "配信履歴", "Ctrl+P", "Ctrl+Q"):
            assert title in text
        keys = [text_of(k) for k in app.screen.query(".help-key")]
        assert "F4" in keys and "F3" not in keys  # suzuki may not compose
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is origin


async def test_dashboard_counters_follow_the_event_stream(app_for, fake):
    """The dashboard's counters change as soon as the API pushes a dashboard event,
    without waiting for the next poll; the 訓練モード banner is shown on the simulator."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        screen = app.screen

        def friends() -> str:
            return text_of(screen.query_one("#stat-friends .stat-value"))

        await wait_until(pilot, lambda: "642 人" in friends())
        assert screen.query_one("#training-banner").display
        await wait_until(pilot, lambda: fake.call(lambda: len(fake.state.listeners)) > 0)
        counters = {
            "friends": 650,
            "registered": 601,
            "deliveries_today": 2,
            "messages_sent_today": 400,
            "active_deliveries": 0,
            "pending_approval": 3,
        }
        fake.call(lambda: fake.state.broadcast("dashboard", counters))
        await wait_until(pilot, lambda: "650 人" in friends(), limit=3)
        assert "3 件" in text_of(screen.query_one("#stat-pending .stat-value"))


async def test_draft_with_schedule_is_saved_and_reopened_for_editing(app_for, fake):
    """S7: 下書き保存 keeps title, messages, segment, 予約配信 time (Japan time) and 通知なし;
    the draft reopens from 配信履歴 (e) with everything in place; a wrongly typed date is
    explained instead of saved."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compose(pilot, app)
        screen.query_one("#title", Input).value = "健診の予約開始"
        screen.query_one("#message-1 TextArea", TextArea).text = "一通目"
        screen.query_one("#add-message", Button).press()
        await wait_until(pilot, lambda: screen.query("#message-2"))
        screen.query_one("#message-2 TextArea", TextArea).text = "二通目"
        topics = screen.query_one("#choice-topics", SelectionList)
        topics.select("kenkou")
        screen.query_one("#age-from-birth_year", Input).value = "40"
        screen.query_one("#age-to-birth_year", Input).value = "64"
        screen.query_one("#schedule", Select).value = "at"
        screen.query_one("#scheduled-at", Input).value = "12月1日 9時半"
        screen.query_one("#silent", Checkbox).value = True
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("年-月-日 時:分の形" in m for m in notifications(app)))
        assert fake.call(lambda: len(fake.state.deliveries)) == 3
        screen.query_one("#scheduled-at", Input).value = "2026-12-01 09:30"
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("下書きを保存しました" in m for m in notifications(app))
        )
        saved = fake.call(lambda: dict(fake.state.deliveries[screen.draft_id]))
        content = saved["content"]
        assert content["messages"] == ["一通目", "二通目"]
        assert content["scheduled_at"] == "2026-12-01T09:30:00+09:00"
        assert content["notification_disabled"] is True
        assert content["segment"]["conditions"] == [
            {"question": "birth_year", "age_from": 40, "age_to": 64},
            {"question": "topics", "any_of": ["kenkou"]},
        ]
        draft_id = screen.draft_id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.query_one("#title", Input).value == ""
        await pilot.press("f5")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        assert app.screen.selected.id == draft_id
        await pilot.press("e")
        await wait_until(pilot, lambda: app.screen is screen)
        await wait_until(pilot, lambda: screen.query_one("#title", Input).value == "健診の予約開始")
        await wait_until(pilot, lambda: screen.messages() == ["一通目", "二通目"])
        assert screen.draft_id == draft_id
        assert screen.query_one("#scheduled-at", Input).value == "2026-12-01 09:30"
        assert list(screen.query_one("#choice-topics", SelectionList).selected) == ["kenkou"]


async def test_statistics_show_small_cells_as_less_than_ten(app_for):
    """W4: 登録者の傾向 draws one chart per question and shows suppressed cells as "<10"."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f6")
        await wait_until(pilot, lambda: app.screen.query(".chart"))
        titles = [text_of(t) for t in app.screen.query(".chart-title")]
        assert titles == ["生まれた年", "性別", "地域", "受け取りたい情報"]
        area_chart = list(app.screen.query(".chart"))[2]
        rows = {label: display for label, _, display in area_chart._rows}
        assert rows["青葉台"] == "<10"
        assert all(d != "<10" for label, d in rows.items() if label in ("本町", "駅前"))


async def test_over_quota_and_resume_need_explicit_decisions(app_for, fake, monkeypatch):
    """S7, G1: approving a delivery larger than LINE's remaining monthly quota needs a second,
    explicit confirmation (then the API is told confirm_over_quota); a delivery stopped as
    要確認 is resumed from 配信履歴 only after a confirmation showing who is still waiting."""

    def setup() -> int:
        fake.state.quota_remaining = 10
        did = fake.state.add_delivery(
            "sato", sample_content("止まった配信"), status="needs_attention"
        )
        fake.state.deliveries[did].update(
            recipient_count=100, sent_count=60, status_reason="LINEの応答が確認できませんでした"
        )
        return did

    stopped = fake.call(setup)
    app = app_for("suzuki")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f4")
        await wait_until(pilot, lambda: getattr(app.screen, "audience", None) is not None)
        approvals = app.screen
        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ConfirmModal)
                and "送信可能数を超えます" in app.screen.title_text
            ),
        )
        assert "残り 10 通" in app.screen.body
        await pilot.press("y")
        await wait_until(pilot, lambda: app.screen is approvals)
        await wait_until(pilot, lambda: any("承認しました" in m for m in notifications(app)))
        assert fake.call(lambda: fake.state.deliveries[2].get("quota_confirmed")) is True

        await pilot.press("f5")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        history = app.screen
        table = history.query_one("#deliveries")
        table.move_cursor(row=table.get_row_index(str(stopped)))
        await wait_until(pilot, lambda: history.selected.id == stopped)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "40 人" in text_of(app.screen.query_one("#confirm-audience"))
        assert "LINEの応答が確認できませんでした" in app.screen.body
        await pilot.press("y")
        await wait_until(pilot, lambda: any("再開しました" in m for m in notifications(app)))
        assert fake.call(lambda: fake.state.deliveries[stopped]["status"]) in (
            "sending",
            "sent",
        )


async def test_unexpected_answers_and_bugs_do_not_close_the_terminal(app_for, fake, monkeypatch):
    """An answer that does not fit the schema is reported as a version mismatch, and even
    an unexpected exception in a worker becomes a Japanese notification; the app stays usable."""
    app = app_for("sato")
    async with app.run_test(size=SIZE) as pilot:
        await signed_in(pilot, app)

        async def not_a_dashboard() -> object:
            return await app.api._model(type(app.me), "GET", "/v1/dashboard")

        monkeypatch.setattr(app.api, "dashboard", not_a_dashboard)
        await pilot.press("r")
        await wait_until(pilot, lambda: any("想定外の応答" in m for m in notifications(app)))

        async def broken() -> object:
            raise RuntimeError("bug")

        monkeypatch.setattr(app.api, "dashboard", broken)
        await pilot.press("r")
        await wait_until(pilot, lambda: any("予期しないエラー" in m for m in notifications(app)))
        assert app.is_running
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.screen.SCREEN_NAME == "history")
