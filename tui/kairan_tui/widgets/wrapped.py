"""Text that wraps by Japanese line-breaking rules (禁則処理) instead of Textual's own wrapping."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from kairan_tui import kinsoku


class WrappedText(Widget):
    """Plain text, wrapped to the widget's width with kinsoku.wrap (never re-wrapped by
    Textual: every line already fits)."""

    DEFAULT_CSS = """
    WrappedText { height: auto; }
    """

    text: reactive[str] = reactive("", layout=True)

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_reactive(WrappedText.text, text)

    def update(self, text: str) -> None:
        self.text = text

    def lines(self, width: int | None = None) -> list[str]:
        return kinsoku.wrap(self.text, self.size.width if width is None else width)

    def render(self) -> Content:
        return Content("\n".join(self.lines()))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return kinsoku.width_of(self.text)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(kinsoku.wrap(self.text, width))
