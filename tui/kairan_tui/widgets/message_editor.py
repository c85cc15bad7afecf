"""One text message of a delivery: an editor with a live length counter (LINE's UTF-16 rule)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, TextArea

from kairan_tui.labels import MESSAGE_MAX_UTF16, utf16_length


class MessageEditor(Vertical):
    """A TextArea and a counter 「123 / 5,000 文字」 that turns red past the limit."""

    DEFAULT_CSS = """
    MessageEditor { height: auto; margin-bottom: 1; }
    MessageEditor > TextArea { height: 5; }
    MessageEditor > .counter { width: 100%; text-align: right; color: $text-muted; }
    MessageEditor > .counter.over { color: $error; text-style: bold; }
    """

    @dataclass
    class Changed(Message):
        editor: MessageEditor
        text: str

    def __init__(self, number: int, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.number = number
        self._initial = text

    def compose(self) -> ComposeResult:
        yield Label(f"メッセージ {self.number}", classes="field-label")
        area = TextArea(self._initial, soft_wrap=True, show_line_numbers=False)
        area.tooltip = "改行もそのまま送信されます。"
        yield area
        yield Label("", classes="counter")

    def on_mount(self) -> None:
        self._update_counter()

    @property
    def text(self) -> str:
        areas = self.query(TextArea)
        # Just mounted editors may not have composed their TextArea yet.
        return areas.first().text if areas else self._initial

    @property
    def length(self) -> int:
        return utf16_length(self.text)

    @property
    def over_limit(self) -> bool:
        return self.length > MESSAGE_MAX_UTF16

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._update_counter()
        self.post_message(self.Changed(self, self.text))

    def _update_counter(self) -> None:
        counter = self.query_one(".counter", Label)
        length = self.length
        over = length > MESSAGE_MAX_UTF16
        note = "（上限を超えています。短くしてください）" if over else ""
        counter.update(f"{length:,} / {MESSAGE_MAX_UTF16:,} 文字{note}")
        counter.set_class(over, "over")
