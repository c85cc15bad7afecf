"""訂正・解除: an approver writes the follow-up of a sent alert (sent at once to the same
districts)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static, TextArea


class FollowUpModal(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (kind, body): kind is "correction" (訂正) or "all_clear" (解除)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "send", "送信"),
    ]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.alert_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="follow-up-dialog", classes="dialog"):
            yield Static(f"「{self.alert_title}」の訂正・解除", classes="dialog-title")
            yield Select[str](
                [("訂正", "correction"), ("解除", "all_clear")],
                value="all_clear",
                allow_blank=False,
                id="follow-up-kind",
            )
            yield Static("登録者に伝える内容（必須）を入力してください。", classes="dialog-body")
            yield TextArea(id="follow-up-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("直ちに送信（Ctrl+S）", id="send", variant="warning")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_send(self) -> None:
        body = self.query_one(TextArea).text.strip()
        if not body:
            self.notify("内容を入力してください。", severity="warning")
            return
        kind = str(self.query_one("#follow-up-kind", Select).value)
        self.dismiss((kind, body))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self.action_send()
        else:
            self.dismiss(None)
