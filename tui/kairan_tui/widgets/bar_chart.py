"""Horizontal bar chart drawn with block characters: works on any terminal, also over ssh."""

from __future__ import annotations

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.widgets import Static


def _pad(label: str, width: int) -> str:
    return label + " " * max(0, width - cell_len(label))


class BarChart(Static):
    """Rows of (label, count, display): the API suppresses small cells (count None) and says
    what to show instead ("<10", W4); bars are drawn for known counts only."""

    DEFAULT_CSS = """
    BarChart { height: auto; }
    """

    def __init__(self, rows: list[tuple[str, int | None, str]] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows = rows or []

    def on_mount(self) -> None:
        self.set_rows(self._rows)

    def on_resize(self) -> None:
        self.set_rows(self._rows)

    def set_rows(self, rows: list[tuple[str, int | None, str]]) -> None:
        self._rows = rows
        label_width = max((cell_len(label) for label, _, _ in rows), default=4)
        label_width = min(label_width, 16)
        numbers = [display for _, _, display in rows]
        number_width = max((len(n) for n in numbers), default=3)
        width = self.size.width or 60
        bar_width = max(4, width - label_width - number_width - 4)
        top = max((v or 0 for _, v, _ in rows), default=0)
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        for (label, value, _), number in zip(rows, numbers, strict=True):
            length = 0 if not top or value is None else round(bar_width * value / top)
            if value and not length:
                length = 1
            bar = Text("█" * length, style="bold cyan")
            bar.append("·" * (bar_width - length), style="dim")
            table.add_row(_pad(label, label_width), bar, number)
        if not rows:
            self.update("（データがありません）")
        else:
            self.update(table)
