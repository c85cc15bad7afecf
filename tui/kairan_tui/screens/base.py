"""What every screen shares: the top bar, the connection banner, the footer, error reporting."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker

from kairan_tui.client import ApiError, ConnectionLost, KairanApi
from kairan_tui.widgets.message_line import MessageLine
from kairan_tui.widgets.top_bar import ConnectionBanner, TopBar

if TYPE_CHECKING:
    from kairan_tui.app import KairanApp


class KairanScreen(Screen):
    """Base of the screens: subclasses implement compose_body() and refresh_data()."""

    SCREEN_NAME: ClassVar[str] = ""

    @property
    def kairan(self) -> KairanApp:
        return cast("KairanApp", self.app)

    @property
    def api(self) -> KairanApi:
        return self.kairan.api

    def compose(self) -> ComposeResult:
        yield TopBar(self.SCREEN_NAME)
        yield ConnectionBanner()
        yield from self.compose_body()
        yield MessageLine()
        # Compact key bar: with every key of a screen it still fits 80 columns.
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    NARROW_BELOW: ClassVar[int] = 100
    """Below this many columns the screen takes its narrow layout (class -narrow): panels
    stacked instead of side by side, so nothing is clipped at 80×24."""

    def on_resize(self) -> None:
        narrow = self.size.width < self.NARROW_BELOW
        self.set_class(narrow, "-narrow")
        # Narrow: the key bar keeps the screen's keys; Ctrl+P メニュー stays in the help (F1).
        for footer in self.query(Footer):
            footer.show_command_palette = not narrow

    def on_screen_resume(self) -> None:
        self.kairan.update_connection_banners()
        self.kairan.update_message_lines()
        self.refresh_data()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.kairan.report_worker_failure(event)

    def refresh_data(self) -> None:
        """Reload what the screen shows (started in a worker by subclasses)."""

    def report(self, exc: Exception, doing: str = "") -> None:
        """Tell the person what went wrong and what to do (never a traceback)."""
        if isinstance(exc, ConnectionLost):
            self.kairan.connection_lost()
            return
        if isinstance(exc, ApiError):
            title = exc.title or "操作できませんでした"
            if doing:
                title = f"{doing}できませんでした"
            self.notify(exc.message, title=title, severity="error", timeout=10)
            return
        raise exc
