"""A LINE-like preview of the messages as a resident's chat will show them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from kairan_tui.widgets.card_preview import preview_widget


class LinePreview(Vertical):
    """Chat bubbles on LINE's green-grey background, with the account name above them."""

    DEFAULT_CSS = """
    LinePreview { background: #7494c0 20%; border: round $secondary; height: 1fr; }
    LinePreview > #preview-heading { color: $text-muted; height: 1; padding: 0 1; }
    LinePreview > VerticalScroll { height: 1fr; }
    LinePreview .bubble {
        background: $surface; color: $foreground; border: round $panel-lighten-2;
        margin: 0 2 0 1; padding: 0 1; width: auto; max-width: 100%; height: auto;
    }
    LinePreview .account { color: $text-muted; padding: 0 1; height: 1; }
    LinePreview .notice { color: $warning; padding: 0 1; height: auto; }
    LinePreview .empty { color: $text-muted; padding: 1 1; }
    """

    def __init__(self, account_name: str = "公式アカウント", **kwargs) -> None:
        super().__init__(**kwargs)
        self.account_name = account_name
        self._messages: list[object] = []
        self._silent = False

    def compose(self) -> ComposeResult:
        yield Static("プレビュー（LINEでの見え方）", id="preview-heading")
        yield VerticalScroll(id="bubbles")

    def on_mount(self) -> None:
        self._render_bubbles()

    def show(self, messages: list, *, notification_disabled: bool = False) -> None:
        """MESSAGES: strings (text) and image / sticker / card items."""
        self._messages = [m for m in messages if not isinstance(m, str) or m.strip()]
        self._silent = notification_disabled
        if self.is_mounted:
            self._render_bubbles()

    def _render_bubbles(self) -> None:
        holder = self.query_one("#bubbles", VerticalScroll)
        holder.remove_children()
        widgets: list[Widget] = []
        if not self._messages:
            widgets.append(Static("本文を入力すると、ここに表示されます。", classes="empty"))
        else:
            widgets.append(Static(self.account_name, classes="account"))
            for item in self._messages:
                widgets.append(preview_widget(item))  # type: ignore[arg-type]
            if self._silent:
                widgets.append(
                    Static("通知音なしで配信されます（音やバイブで知らせません）", classes="notice")
                )
        holder.mount_all(widgets)
