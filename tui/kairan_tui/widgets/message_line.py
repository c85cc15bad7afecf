"""Where messages to staff appear: a full-width line above the key bar, never a toast.

Textual's toasts float over the screen and lose double-width characters where they cross a
panel border (Textualize/textual#6357: 「入力内容を確認してくだ  い」). This line spans the whole
width in the normal layout, so nothing is ever drawn over a border; long text wraps with
Japanese line-breaking rules (kinsoku).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from kairan_tui.widgets.wrapped import WrappedText

SEVERITY_LABELS = {"information": "お知らせ", "warning": "確認", "error": "エラー"}


class MessageLine(Horizontal):
    DEFAULT_CSS = """
    MessageLine {
        height: auto; max-height: 6; display: none;
        background: $panel; border-top: solid $panel-lighten-2;
    }
    MessageLine.-shown { display: block; }
    MessageLine > #message-kind { width: auto; padding: 0 1; text-style: bold; }
    MessageLine.-information > #message-kind { background: $success; color: $text; }
    MessageLine.-warning > #message-kind { background: $warning; color: $background; }
    MessageLine.-error > #message-kind { background: $error; color: $text; }
    MessageLine > #message-text { width: 1fr; padding: 0 1; }
    MessageLine.-error > #message-text { text-style: bold; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="message-kind")
        yield WrappedText("", id="message-text")

    def show_message(self, message: str, title: str, severity: str) -> None:
        self.query_one("#message-kind", Static).update(SEVERITY_LABELS.get(severity, "お知らせ"))
        text = f"{title}：{message}" if title else message
        self.query_one("#message-text", WrappedText).update(text)
        for name in SEVERITY_LABELS:
            self.set_class(name == severity, f"-{name}")
        self.add_class("-shown")

    def clear_message(self) -> None:
        self.remove_class("-shown")

    @property
    def text(self) -> str:
        return self.query_one("#message-text", WrappedText).text if self.has_class("-shown") else ""
