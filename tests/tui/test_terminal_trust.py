"""Issue 18: a staff terminal a city office can trust (no lost work, readable Japanese at
80×24, only valid actions, four eyes in training). Against the fake API."""

from __future__ import annotations

import pytest
from textual.widgets._toast import Toast
from tui_helpers import notifications, wait_until

from kairan_tui.kinsoku import NO_LINE_START
from kairan_tui.screens.compose import ComposeScreen
from kairan_tui.widgets.message_line import MessageLine
from kairan_tui.widgets.wrapped import WrappedText

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
