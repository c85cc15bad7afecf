"""A staff terminal a city office can trust (no lost work, readable Japanese at
80×24, only valid actions, four eyes in training). Against the fake API."""

from __future__ import annotations

from typing import Any

import pytest
from textual.binding import Binding
from textual.widgets import Button, Checkbox, DataTable, Input, ListView, SelectionList, TextArea
from textual.widgets._toast import Toast

from kairan_tui.kinsoku import NO_LINE_START
from kairan_tui.modals import confirm
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.unsaved import UnsavedModal
from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.screens.survey import survey_diff
from kairan_tui.widgets.message_editor import MessageEditor
from kairan_tui.widgets.message_line import MessageLine
from kairan_tui.widgets.wrapped import WrappedText
from tests.support.tui_helpers import notifications, wait_until

SIZES = [(80, 24), (120, 36)]
SIZE_IDS = ["80x24", "120x36"]

LONG_ERROR = (
    "テスト送信先が登録されていません。「テスト送信先の登録」（Ctrl+O）からご自身のLINEを"
    "登録してください。登録すると、承認依頼の前にご自身のスマートフォンで見え方を確認できます。"
)


async def signed_in(pilot, app) -> None:
    await wait_until(pilot, lambda: app.me is not None and app.screen.id != "_default")
    await pilot.pause(0.1)


async def open_compose(pilot, app) -> ComposeScreen:
    await signed_in(pilot, app)
    await pilot.press("f3")
    await wait_until(pilot, lambda: isinstance(app.screen, ComposeScreen))
    screen = app.screen
    await wait_until(pilot, lambda: screen.query("#choice-topics"))
    return screen


@pytest.mark.req("N5")
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_long_japanese_error_snapshot(size, app_for, snap_compare):
    """N5 (item 5): a long Japanese error is shown whole on the message line above the key
    bar, never in a toast drawn over a panel border (textual#6357), at both sizes."""
    app = app_for("ito")

    async def run_before(pilot) -> None:
        await open_compose(pilot, app)
        await pilot.pause(0.4)
        app.notify(LONG_ERROR, title="テスト送信できませんでした", severity="error", timeout=60)
        app.screen.set_focus(None)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.req("N5")
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_messages_use_the_message_line_not_toasts(size, app_for):
    """N5 (items 5, 8): what the app says appears on a full-width line (no floating toast), with
    every character, wrapped so that no line starts with 。、）」."""
    app = app_for("sato")
    async with app.run_test(size=size) as pilot:
        screen = await open_compose(pilot, app)
        await pilot.press("ctrl+t")  # nothing entered yet: the form says what is missing
        await wait_until(pilot, lambda: notifications(app))
        line = screen.query_one(MessageLine)
        assert line.display and "件名を入力してください。" in line.text
        app.notify(LONG_ERROR, title="テスト送信できませんでした", severity="error")
        await pilot.pause(0.1)
        assert line.text == f"テスト送信できませんでした：{LONG_ERROR}"
        assert line.region.width == size[0]  # spans the screen: crosses no border
        wrapped = line.query_one(WrappedText).lines()
        assert "".join(wrapped) == line.text
        assert all(row[0] not in NO_LINE_START for row in wrapped[1:])
        # No toast is visible anywhere.
        assert all(not toast.display or not toast.visible for toast in app.screen.query(Toast))
        assert not [t for t in app.screen.query("ToastRack") if t.display]


async def type_draft(pilot, screen: ComposeScreen, title: str) -> None:
    screen.query_one("#title", Input).value = title
    area = screen.query_one("#message-1", MessageEditor).query_one(TextArea)
    area.text = "あ" * 5000
    screen.query_one("#segment-all", Checkbox).value = True
    await pilot.pause(0.1)


@pytest.mark.req("N5")
async def test_new_asks_before_wiping_a_draft(app_for, fake):
    """N5 (item 2): Ctrl+N on a 5,000-character draft asks 保存して / 破棄して / 戻る; 戻る (and
    Esc, and Enter: it has the focus) keeps every character; 保存 keeps it as a draft on the
    server; 破棄 empties the form. An unchanged form starts anew without asking."""
    app = app_for("sato")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        await pilot.press("ctrl+n")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, UnsavedModal)  # nothing to lose
        await type_draft(pilot, screen, "長いお知らせ")
        for leave in ("escape", "enter"):
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
            await pilot.press(leave)
            await wait_until(pilot, lambda: app.screen is screen)
            assert screen.messages() == ["あ" * 5000]
            assert screen.query_one("#title", Input).value == "長いお知らせ"
        before = set(fake.call(lambda: set(fake.state.deliveries)))
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        await pilot.click("#save")
        await wait_until(pilot, lambda: screen.query_one("#title", Input).value == "")
        new = set(fake.call(lambda: set(fake.state.deliveries))) - before
        assert len(new) == 1
        saved = fake.call(lambda: fake.state.deliveries[new.pop()])
        assert saved["status"] == "draft"
        assert saved["content"]["messages"] == ["あ" * 5000]
        await type_draft(pilot, screen, "もう一つのお知らせ")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        await pilot.click("#discard")
        await wait_until(pilot, lambda: screen.query_one("#title", Input).value == "")
        assert screen.messages() in ([], [""])
        assert not screen.has_unsaved_changes()


@pytest.mark.req("N5")
async def test_quit_asks_before_losing_unsaved_text(app_for, fake):
    """N5 (item 2): Ctrl+Q with unsaved text asks first; 戻る keeps the app running with the
    text; 保存して終了 saves the draft and then quits."""
    app = app_for("sato")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        await type_draft(pilot, screen, "終了前のお知らせ")
        await pilot.press("f2")  # even from another screen
        await pilot.pause(0.2)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        assert "終了" in str(app.screen.query_one("#save", Button).label)
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.is_running and screen.query_one("#title", Input).value == "終了前のお知らせ"
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        await pilot.click("#save")
        await wait_until(pilot, lambda: not app.is_running)
    titles = fake.call(lambda: [d["content"]["title"] for d in fake.state.deliveries.values()])
    assert "終了前のお知らせ" in titles


@pytest.mark.req("N5")
async def test_editing_a_draft_from_history_asks_first(app_for):
    """N5 (item 2): `e` in 配信履歴 does not overwrite a form being edited without asking."""
    app = app_for("ito")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        await type_draft(pilot, screen, "作成中のお知らせ")
        await pilot.press("f5")
        history = app.screen
        await wait_until(pilot, lambda: history.query("#history-preview"))
        table = history.query_one("#deliveries", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0)
        draft_row = next(
            n
            for n, key in enumerate(table.rows)
            if history._items[int(key.value)].status == "draft"
        )
        table.move_cursor(row=draft_row)
        await wait_until(
            pilot, lambda: history.selected is not None and history.selected.status == "draft"
        )
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert screen.query_one("#title", Input).value == "作成中のお知らせ"
        await pilot.press("f5")
        await pilot.pause(0.2)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        await pilot.click("#discard")
        await wait_until(
            pilot, lambda: screen.query_one("#title", Input).value == "秋のイベント情報"
        )
        assert not screen.has_unsaved_changes()


@pytest.mark.req("N4")
async def test_a_delivery_to_nobody_cannot_be_requested(app_for):
    """N4 (item 4): an audience of 0 says 「該当する登録者がいません」 (not 「少人数です」), and
    承認依頼 is refused before any confirmation, naming the condition that leaves no one."""
    app = app_for("sato")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        screen.query_one("#title", Input).value = "高齢者向けのお知らせ"
        screen.query_one("#message-1", MessageEditor).query_one(TextArea).text = "お知らせです。"
        screen.query_one("#age-from-birth_year", Input).value = "140"
        audience = screen.query_one("#audience")
        await wait_until(pilot, lambda: "0 人" in str(audience.render()))
        assert "該当する登録者がいません" in str(audience.render())
        assert "少人数" not in str(audience.render())
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.query_one(MessageLine).text)
        text = screen.query_one(MessageLine).text
        assert "該当する登録者がいません。「年齢：140歳以上」に当てはまる登録者がいません" in text
        assert app.screen is screen  # no confirmation was offered
        assert screen.draft_id is None  # nothing was saved or submitted


@pytest.mark.req("N5")
async def test_tick_boxes_read_without_colour(app_for):
    """N5 (item 7): 「登録者全員に配信する」 and the option lists show [x] when ticked and [ ] when
    not: the state is in the glyph, not only in the colour."""
    app = app_for("sato")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        everyone = screen.query_one("#segment-all", Checkbox)
        assert str(everyone.render()).startswith("[ ]")
        everyone.value = True
        await pilot.pause()
        assert str(everyone.render()).startswith("[x]")
        everyone.value = False
        topics = screen.query_one("#choice-topics", SelectionList)
        await pilot.pause()
        first = topics.get_option_at_index(0)
        line = "".join(s.text for s in topics.render_line(0))
        assert line.startswith("[ ]"), line
        topics.select(first.value)
        await pilot.pause()
        line = "".join(s.text for s in topics.render_line(0))
        assert line.startswith("[x]"), line


async def open_survey(pilot, app):
    await signed_in(pilot, app)
    await pilot.press("f7")
    await wait_until(pilot, lambda: app.screen.query("#question-list ListItem"))
    await pilot.pause(0.1)
    return app.screen


@pytest.mark.req("N2")
async def test_survey_publishing_shows_the_changes_and_needs_y(app_for, fake, monkeypatch):
    """N2, S16 (items 3, 15): the editor opens with the focus in its question list; Ctrl+S with
    nothing changed makes no version; a change is shown as a diff and published only with Y
    (Enter cancels); Ctrl+R is not bound here (it means 承認依頼 on 配信作成); a year question
    can be added."""
    app = app_for("tanaka")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_survey(pilot, app)
        assert isinstance(app.focused, ListView) and app.focused.id == "question-list"
        assert "ctrl+r" not in {b.key for b in screen.BINDINGS if isinstance(b, Binding)}
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "変更はありません" in screen.query_one(MessageLine).text)
        assert not isinstance(app.screen, ConfirmModal)
        assert fake.call(lambda: fake.state.survey_version) == 1
        screen.query_one("#q-title", Input).value = "お住まいの地区"
        monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.query_one(".dialog-body", WrappedText).text
        assert "見出しを変更：「お住まいの地区」" in body
        await pilot.press("enter")  # the focused キャンセル: nothing is published
        await wait_until(pilot, lambda: app.screen is screen)
        assert fake.call(lambda: fake.state.survey_version) == 1
        screen.query_one("#add-year-question", Button).press()
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.query_one(".dialog-body", WrappedText).text
        assert "質問を追加：「生まれた年」" in body
        await pilot.press("y")
        await wait_until(pilot, lambda: fake.call(lambda: fake.state.survey_version) == 2)
        kinds = fake.call(lambda: [q["kind"] for q in fake.state.survey["questions"]])
        assert kinds[-1] == "year"


def test_survey_diff_names_each_change():
    """Pure: the diff lists added, removed, reworded and reordered items in Japanese."""
    old: dict[str, Any] = {
        "welcome": "ようこそ",
        "purpose_notice": "目的",
        "completion": "完了",
        "consent_version": 1,
        "questions": [
            {"code": "a", "kind": "choice", "title": "地域", "text": "t", "purpose": "p",
             "options": [{"code": "x", "label": "本町"}, {"code": "y", "label": "駅前"}]},
            {"code": "b", "kind": "year", "title": "生まれた年", "text": "t", "purpose": "p"},
        ],
    }  # fmt: skip
    assert survey_diff(old, old) == []
    new = {
        **old,
        "welcome": "こんにちは",
        "questions": [
            {**old["questions"][1]},
            {**old["questions"][0],
             "options": [{"code": "x", "label": "本町一丁目"}, {"code": "z", "label": "旭"}]},
        ],
    }  # fmt: skip
    lines = survey_diff(old, new)
    assert "・友だち追加時のあいさつを変更：「こんにちは」" in lines
    assert "・質問「地域」の選択肢「本町」を「本町一丁目」に変更" in lines
    assert "・質問「地域」に選択肢を追加：「旭」" in lines
    assert "・質問「地域」の選択肢「駅前」を削除" in lines
    assert "・質問の順番を変更" in lines


def footer_keys(screen) -> set[str]:
    """The keys the screen offers right now (what the footer shows)."""
    return {
        binding.key
        for binding in screen.BINDINGS
        if isinstance(binding, Binding)
        and screen.check_action(binding.action.split("(")[0], _params(binding.action))
    }


def _params(action: str) -> tuple[object, ...]:
    if "(" not in action:
        return ()
    inside = action.split("(", 1)[1].rstrip(")")
    return (int(inside),) if inside.lstrip("-").isdigit() else (inside,)


@pytest.mark.req("N5")
async def test_history_offers_only_valid_actions_and_pages(app_for, fake):
    """N5 (item 12): a delivered item offers neither 配信中止 nor 下書きを編集; a draft offers
    下書きを編集; a sent-back draft reads 差し戻し; the list pages beyond the latest 200."""
    from tests.support.tui_fake_api import sample_content

    def add_many() -> None:
        for n in range(230):
            fake.state.add_delivery("ito", sample_content(f"過去の配信{n}"), status="sent")
        back = fake.state.add_delivery("ito", sample_content("差し戻された配信"))
        fake.state.deliveries[back]["reject_comment"] = "日時を追記してください"

    fake.call(add_many)
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.screen.query("#history-preview"))
        screen = app.screen
        table = screen.query_one("#deliveries", DataTable)
        await wait_until(pilot, lambda: table.row_count == 200)
        await wait_until(pilot, lambda: screen.selected is not None)
        assert screen.selected.title == "差し戻された配信"
        assert str(table.get_row_at(0)[2]) == "差し戻し"
        assert {"e", "n"} <= footer_keys(screen)
        assert "c" not in footer_keys(screen) and "p" not in footer_keys(screen)
        table.move_cursor(row=1)
        await wait_until(pilot, lambda: screen.selected.status == "sent")
        keys = footer_keys(screen)
        assert "c" not in keys and "e" not in keys and "s" not in keys
        await pilot.press("n")
        await wait_until(pilot, lambda: screen.page_offset == 200 and table.row_count == 34)
        assert "201〜234件目" in str(screen.query_one("#history-title").render())
        assert "p" in footer_keys(screen) and "n" not in footer_keys(screen)


@pytest.mark.req("S8")
async def test_audit_reads_in_japanese_and_filters_by_japanese_words(app_for):
    """S8 (item 9): the audit log names operations in Japanese from the one glossary (no
    `api.…` codes), names targets one way (配信番号 N), filters by a Japanese word, and an empty
    result says 「該当する記録はありません」."""
    app = app_for("takahashi")
    async with app.run_test(size=(120, 36)) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f9")
        await wait_until(pilot, lambda: app.screen.query("#audit-table"))
        screen = app.screen
        table = screen.query_one("#audit-table", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0)
        cells = [str(c) for row in range(table.row_count) for c in table.get_row_at(row)]
        assert not any(c.startswith("api.") for c in cells), cells
        assert "配信の承認" in cells and "配信番号 2" in cells
        assert not any(c.startswith("delivery") for c in cells)
        screen.query_one("#filter-action", Input).value = "承認"
        await pilot.press("ctrl+g")  # (verify does not change the list)
        screen.action_search()
        await wait_until(
            pilot,
            lambda: (
                table.row_count > 0
                and all("承認" in str(table.get_row_at(r)[3]) for r in range(table.row_count))
                and table.row_count < 7
            ),
        )
        screen.query_one("#filter-action", Input).value = "存在しない操作"
        screen.action_search()
        await wait_until(pilot, lambda: table.row_count == 0)
        assert "該当する記録はありません" in str(screen.query_one("#audit-empty").render())


@pytest.mark.req("S14")
async def test_admin_manages_staff_from_the_terminal(app_for, fake, monkeypatch):
    """S14, S8 (item 15): an admin adds a staff member with roles, changes them and removes
    them from F8; each change is audited; the last active administrator cannot be removed."""
    from kairan_tui.modals.staff_edit import StaffEditModal

    monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
    app = app_for("tanaka")
    async with app.run_test(size=(100, 32)) as pilot:
        await signed_in(pilot, app)
        await pilot.press("f8")
        await wait_until(pilot, lambda: app.screen.query("#staff-table"))
        screen = app.screen
        table = screen.query_one("#staff-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 5)
        table.focus()
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, StaffEditModal))
        modal = app.screen
        modal.query_one("#staff-username", Input).value = "yamada"
        modal.query_one("#staff-name", Input).value = "山田 太郎"
        modal.query_one("#role-author", Checkbox).value = True
        modal.query_one("#save", Button).press()
        await wait_until(pilot, lambda: table.row_count == 6)
        person = fake.call(lambda: fake.state.staff["yamada"])
        assert person["roles"] == ["author"] and person["display_name"] == "山田 太郎"
        row = next(n for n, key in enumerate(table.rows) if key.value == "yamada")
        table.move_cursor(row=row)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, StaffEditModal))
        app.screen.query_one("#role-approver", Checkbox).value = True
        app.screen.query_one("#save", Button).press()
        await wait_until(
            pilot,
            lambda: (
                fake.call(lambda: fake.state.staff["yamada"]["roles"]) == ["author", "approver"]
            ),
        )
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 5)
        actions = fake.call(lambda: [e["action"] for e in fake.state.audit])
        assert actions.count("staff.put") == 2 and "staff.remove" in actions
        # The only administrator cannot remove themselves: the daemon's refusal is shown.
        row = next(n for n, key in enumerate(table.rows) if key.value == "tanaka")
        table.move_cursor(row=row)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot, lambda: "管理者が1人もいなくなる" in screen.query_one(MessageLine).text
        )
        assert "tanaka" in fake.call(lambda: fake.state.staff)


@pytest.mark.req("N5")
async def test_wording_fixes(app_for):
    """N5 (item 10): Ctrl+C explains in Japanese; the schedule placeholder is never in the
    past; help writes keys as the key bar does (「r」, not 「R」); 通知音なしで配信."""
    import datetime as dt

    from kairan_tui.labels import JST
    from kairan_tui.screens.compose import schedule_example
    from kairan_tui.screens.help import key_label

    assert key_label("r") == "r" and key_label("ctrl+r") == "Ctrl+R" and key_label("f5") == "F5"
    example = dt.datetime.strptime(schedule_example(), "%Y-%m-%d %H:%M").replace(tzinfo=JST)
    assert example > dt.datetime.now(JST)
    app = app_for("sato")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        assert "通知音なしで配信" in str(screen.query_one("#silent", Checkbox).label)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: "Ctrl+Q" in screen.query_one(MessageLine).text)
        assert "終了するには" in screen.query_one(MessageLine).text


@pytest.mark.req("S7")
async def test_trainee_switches_between_author_and_approver(fake, monkeypatch):
    """S7, S5 (item 13): in training the trainee switches (Ctrl+B) between 研修 作成者 and 研修
    承認者, two identities on the roster, so a delivery is approved by another person; unsaved
    work is asked about first."""
    from kairan_tui.app import make_app
    from kairan_tui.screens.approvals import ApprovalsScreen

    monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
    author, approver = fake.socket_for("sato"), fake.socket_for("suzuki")
    app = make_app(
        author,
        connection_check_seconds=60,
        retry_seconds=0.2,
        identities=[("研修 作成者", author), ("研修 承認者", approver)],
    )
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_compose(pilot, app)
        assert app.me is not None and app.me.username == "sato"
        assert "Ctrl+B 立場の切替" in str(app.screen.query_one("#title-line").render())
        screen.query_one("#title", Input).value = "書きかけ"
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, UnsavedModal))
        app.screen.query_one("#discard", Button).press()
        await wait_until(pilot, lambda: app.me is not None and app.me.username == "suzuki")
        assert "approvals" in app.visible_screens and "compose" not in app.visible_screens
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalsScreen))
        approvals = app.screen
        assert isinstance(approvals, ApprovalsScreen)
        await wait_until(pilot, lambda: approvals.audience is not None)
        assert approvals.selected is not None and approvals.selected.author == "sato"
        pending = approvals.selected.id
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: (
                fake.call(lambda: fake.state.deliveries[pending]["status"]) != ("pending_approval")
            ),
        )
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.me is not None and app.me.username == "sato")
