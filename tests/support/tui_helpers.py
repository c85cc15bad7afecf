"""Helpers for driving the TUI in Pilot tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches
from textual.widgets import Input, TextArea

if TYPE_CHECKING:
    from kairan_tui.screens.programs import ProgramsScreen


async def wait_until(pilot, condition: Callable[[], object], limit: float = 10.0) -> None:
    """Let the app run until condition() is true (workers answer asynchronously). A widget
    the condition looks for that is not mounted yet counts as false, not as a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit

    def holds() -> bool:
        try:
            return bool(condition())
        except NoMatches:
            return False

    while not holds():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def type_into(pilot, widget: Input | TextArea, text: str) -> None:
    """Focus WIDGET and type TEXT as key presses (what a person does)."""
    widget.focus()
    await pilot.pause()
    if isinstance(widget, Input):
        widget.value = ""
    await pilot.press(*list(text))


async def open_programs(pilot, app, ready: Callable[[Any], object]) -> ProgramsScreen:
    """Log in, press Ctrl+F and wait until the 配信サービス screen is shown and READY(screen)."""
    from kairan_tui.screens.programs import ProgramsScreen

    await wait_until(pilot, lambda: app.me is not None)
    await pilot.press("ctrl+f")
    await wait_until(pilot, lambda: isinstance(app.screen, ProgramsScreen))
    screen = app.screen
    assert isinstance(screen, ProgramsScreen)
    await wait_until(pilot, lambda: ready(screen))
    return screen
