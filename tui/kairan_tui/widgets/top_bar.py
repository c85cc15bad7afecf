"""The two lines at the top of every screen: who is signed in, 訓練モード, and the screen keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from kairan_tui.labels import roles_label
from kairan_tui.navigation import allowed_screens

if TYPE_CHECKING:
    from kairan_tui.app import KairanApp


class TopBar(Vertical):
    DEFAULT_CSS = """
    TopBar { height: auto; dock: top; }
    TopBar > #title-line { background: $primary; color: $text; height: 1; }
    TopBar > #nav-line { background: $panel; height: auto; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static(id="title-line")
        yield Static(id="nav-line")

    def on_mount(self) -> None:
        self.refresh_lines()

    def refresh_lines(self) -> None:
        app = cast("KairanApp", self.app)
        me = app.me
        title = Text(" Kairan 職員用画面", style="bold")
        if me is not None and me.training_mode:
            title.append("  ")
            title.append(" 訓練モード ", style="bold black on yellow")
        if me is not None:
            title.append(f"  {me.display_name}（{roles_label(me.roles)}）")
            if me.training_mode and len(app.identities) > 1:
                title.append("  Ctrl+B 立場の切替", style="bold")
        self.query_one("#title-line", Static).update(title)
        nav = Text(" ")
        for entry in allowed_screens(me.allowed if me else []):
            style = "reverse bold" if entry.name == self.current else ""
            # Compact; on a narrow terminal the bar wraps between entries (never clipped).
            nav.append(entry.label, style="bold")
            nav.append(entry.title, style=style)
            nav.append(" ")
        nav.append("F1 ヘルプ", style="dim")
        self.query_one("#nav-line", Static).update(nav)


class ConnectionBanner(Static):
    """Shown while the daemon cannot be reached; hidden again once reconnected."""

    DEFAULT_CSS = """
    ConnectionBanner {
        height: auto; display: none;
        background: $error; color: $text; text-style: bold; padding: 0 1;
    }
    ConnectionBanner.-lost { display: block; }
    """
