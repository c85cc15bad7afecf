"""Before anything replaces or closes a draft with unsaved changes: 保存して… / 破棄して… / 戻る.

The safe choice, 戻る, has the focus, so Enter (or a held Enter) never throws work away; Esc
also goes back.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from kairan_tui.widgets.wrapped import WrappedText

Choice = Literal["save", "discard", "back"]


class UnsavedModal(ModalScreen[str]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "choose('back')", "戻る")]

    def __init__(self, doing: str, detail: str = "") -> None:
        super().__init__()
        self.doing = doing
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="unsaved-dialog", classes="dialog"):
            yield Static("保存していない変更があります", classes="dialog-title")
            yield WrappedText(
                f"作成中の配信に保存していない変更があります。{self.detail}"
                f"下書きとして保存してから{self.doing}しますか。",
                classes="dialog-body",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"保存して{self.doing}", id="save", variant="primary")
                yield Button(f"破棄して{self.doing}", id="discard", variant="error")
                yield Button("戻る", id="back")

    def on_mount(self) -> None:
        self.query_one("#back", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id or "back")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
