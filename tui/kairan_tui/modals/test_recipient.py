"""テスト送信先の登録: show the one-time code the staff member sends from their own LINE."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from kairan_tui.widgets.wrapped import WrappedText
from kairand.api import schema


class RecipientCodeModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "閉じる")]

    def __init__(
        self,
        code: schema.TestRecipientCode,
        registered: int | None = None,
        training: bool = False,
    ) -> None:
        super().__init__()
        self.code = code
        self.registered = registered
        self.training = training

    def compose(self) -> ComposeResult:
        expires = self.code.expires_at.strftime("%H:%M")
        if self.training:
            # In training there is no LINE of one's own: the simulator's trainee phone sends it.
            body = (
                "訓練モードでは、研修用スマートフォンからこのコードを公式アカウントに送信します。"
                "別の端末で make phone を実行し、コードを入力して Enter を押してください。"
                f"有効期限は{expires}までです。テスト送信もその画面に届きます。"
            )
        else:
            body = (
                "ご自身のLINEからこのコードを公式アカウントに送信してください。"
                f"コードの有効期限は{expires}までです。登録が済むと、"
                "テスト送信がご自身のLINEに届くようになります。"
            )
        with Vertical(id="code-dialog", classes="dialog"):
            yield Static("テスト送信先の登録", classes="dialog-title")
            yield Static(self.code.code, id="test-code", classes="big-code")
            yield WrappedText(
                body, id="phone-hint" if self.training else None, classes="dialog-body"
            )
            if self.registered is not None:
                yield Static(
                    f"現在登録済みのテスト送信先：{self.registered} 件", classes="dialog-hint"
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("閉じる", id="close", variant="primary")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
