"""Helpers for driving the TUI in Pilot tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.css.query import NoMatches
from textual.widgets import Input, TextArea


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
