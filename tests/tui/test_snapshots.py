"""Snapshots of every screen at 80×24 and 120×36 (the smallest terminal staff use, and a common
larger one), against the fake API so the figures never change. Review changed SVGs by eye:
`pytest tests/tui/test_snapshots.py --snapshot-update` rewrites them."""

from __future__ import annotations

import pytest

from tests.support.tui_helpers import wait_until

SIZES = [(80, 24), (120, 36)]

# screen -> (staff member whose roles allow it, key that opens it, a selector shown when loaded)
SCREENS = {
    "dashboard": ("ito", None, "#stat-friends"),
    "compose": ("ito", "f3", "#choice-topics"),
    "approvals": ("ito", "f4", "#approval-preview"),
    "history": ("ito", "f5", "#history-preview"),
    "statistics": ("ito", "f6", ".chart"),
    "survey": ("tanaka", "f7", "#question-list ListItem"),
    "staff": ("tanaka", "f8", "#staff-table"),
    "audit": ("takahashi", "f9", "#audit-table"),
    "alert": ("sato", "f12", "#field-advice"),
    "programs": ("ito", "ctrl+f", "#templates-table"),
}


def _loaded(app, selector: str):
    def check() -> bool:
        if app.me is None:
            return False
        found = app.screen.query(selector)
        return bool(found)

    return check


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCREENS))
def test_screen_snapshot(name, size, app_for, snap_compare):
    """Each screen renders in Japanese and fits the terminal sizes staff use."""
    user, key, selector = SCREENS[name]
    app = app_for(user)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        if key:
            await pilot.press(key)
        await wait_until(pilot, _loaded(app, selector))
        await pilot.pause(0.4)
        app.screen.set_focus(None)
        if name == "alert":
            # The form scrolls to the first empty field when its template arrives, a moment
            # that depends on timing: show it from the top, as staff first see it.
            for node in app.screen.query("*"):
                if node.is_scrollable:
                    node.scroll_to(0, 0, animate=False)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_help_snapshot(app_for, snap_compare):
    """F1 lists every key binding of the screen and of the app, in Japanese."""
    app = app_for("ito")

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f4")
        await wait_until(pilot, _loaded(app, "#approval-preview"))
        await pilot.press("f1")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_confirm_snapshot(app_for, snap_compare):
    """S7: the approval confirmation shows the audience count and the Y key, not Enter."""
    app = app_for("ito")

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f4")
        await wait_until(pilot, _loaded(app, "#approval-preview"))
        await wait_until(pilot, lambda: app.screen.audience is not None)
        await pilot.press("a")
        await pilot.pause(0.7)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


# The 配信サービス screen's administration dialogs, as the staff member who may use
# each: dialog -> (staff member, key pressed on the screen, a selector inside the dialog).
PROGRAM_DIALOGS = {
    "program-edit": ("tanaka", "e", "#program-reconsent"),
    "template-create": ("ito", "t", "#template-fields"),
    "template-revise": ("ito", "e", "#template-fields"),  # on the templates table
    "institution": ("tanaka", "i", "#institution-districts"),
    "districts-import": ("tanaka", "d", "#districts-path"),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(PROGRAM_DIALOGS))
def test_program_dialog_snapshot(name, size, app_for, snap_compare):
    """Each administration dialog fits 80×24 with its Japanese labels and buttons."""
    user, key, selector = PROGRAM_DIALOGS[name]
    app = app_for(user)

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("ctrl+f")
        await wait_until(pilot, _loaded(app, "#templates-table"))
        await wait_until(pilot, lambda: bool(app.screen.program_rows))
        if name == "program-edit":
            app.screen.query_one("#programs-table").move_cursor(row=1)
        if name == "template-revise":
            app.screen.query_one("#templates-table").focus()
            await pilot.pause()
        await pilot.press(key)
        await wait_until(pilot, _loaded(app, selector))
        await pilot.pause(0.3)
        app.screen.set_focus(None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
