"""差し戻し: the approver writes why the delivery goes back to its author."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea


class RejectModal(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "send", "差し戻す"),
    ]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.delivery_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="reject-dialog", classes="dialog"):
            yield Static(f"「{self.delivery_title}」を差し戻します", classes="dialog-title")
            yield Static("作成者に伝える理由（必須）を入力してください。", classes="dialog-body")
            yield TextArea(id="reject-comment")
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("差し戻す（Ctrl+S）", id="send", variant="warning")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_send(self) -> None:
        comment = self.query_one(TextArea).text.strip()
        if not comment:
            self.notify("差し戻しの理由を入力してください。", severity="warning")
            return
        self.dismiss(comment)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self.action_send()
        else:
            self.dismiss(None)
