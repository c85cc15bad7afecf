"""Tick boxes whose state reads without colour: 「[x]」 ticked, 「[ ]」 not ticked.

Textual draws the same 「X」 in both states and tells them apart by colour only, so on a
monochrome or colour-blind reading 「登録者全員に配信する」 looked ticked when it was not. ASCII
brackets (not ☑/☐, which are East-Asian-ambiguous width and take two cells in many Japanese
terminals) keep the columns aligned everywhere.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList

TICKED = "x"
UNTICKED = " "


class Check(Checkbox):
    BUTTON_LEFT = "["
    BUTTON_RIGHT = "]"

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = TICKED if self.value else UNTICKED
        return super()._button


class CheckList(SelectionList[Any]):
    """A SelectionList whose marks are [x] / [ ]."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        if len(segments) < 3 or segments[1].text not in ("X", TICKED, UNTICKED):
            return strip
        _, scroll_y = self.scroll_offset
        try:
            option = self.get_option_at_index(scroll_y + y)
        except Exception:
            return strip
        ticked = option.value in self._selected
        inner = segments[1]
        marked = [
            Segment("[", inner.style),
            Segment(TICKED if ticked else UNTICKED, inner.style),
            Segment("]", inner.style),
        ]
        return Strip([*marked, *segments[3:]], strip.cell_length)
