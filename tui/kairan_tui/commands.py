"""Command palette (Ctrl+P): one entry per screen the caller may open."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from kairan_tui.navigation import SCREENS

if TYPE_CHECKING:
    from kairan_tui.app import KairanApp


class ScreenCommands(Provider):
    def _entries(self):
        app = cast("KairanApp", self.app)
        visible = set(app.visible_screens)
        return [entry for entry in SCREENS if entry.name in visible]

    async def discover(self) -> Hits:
        app = cast("KairanApp", self.app)
        for entry in self._entries():
            yield DiscoveryHit(
                f"{entry.title}を開く",
                partial(app.action_open_screen, entry.name),
                help=f"{entry.label}：{entry.help}",
            )

    async def search(self, query: str) -> Hits:
        app = cast("KairanApp", self.app)
        matcher = self.matcher(query)
        for entry in self._entries():
            text = f"{entry.title}を開く"
            score = max(matcher.match(text), matcher.match(entry.keywords) * 0.9)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(app.action_open_screen, entry.name),
                    help=f"{entry.label}：{entry.help}",
                )
